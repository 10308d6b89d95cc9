#!/usr/bin/env python3
"""Generates modern.json, the test vectors of the modern protocol (spec
section 12), from an implementation independent of the Go code: Noise
message 1 of pattern X is written out here step by step on top of the
`cryptography` package's X25519 and ChaCha20-Poly1305 and hashlib's BLAKE2s
(the Go code uses github.com/flynn/noise and golang.org/x/crypto).

Run: python3 spec/vectors/gen_modern.py > spec/vectors/modern.json
Needs: Python 3.8+ and the `cryptography` package. Deterministic: every key,
including each knock's ephemeral key, is derived from a fixed label.
"""
import hashlib
import hmac
import ipaddress
import json
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from base64 import b64encode

# --- Constants of spec section 12 -------------------------------------------

MAGIC, TYPE_KNOCK = 0xD2, 0x01
HEADER = bytes([MAGIC, TYPE_KNOCK])
PROTOCOL_NAME = b"Noise_X_25519_ChaChaPoly_BLAKE2s"   # MODERN-12.5
PROLOGUE_LABEL = b"doorman modern knock"              # prologue = label || header
MAC1_LABEL = b"doorman mac1"                          # MODERN-12.6
REQUEST_LEN = 64                                      # MODERN-12.7
KNOCK_LEN = 2 + 32 + 48 + (REQUEST_LEN + 16) + 16     # MODERN-12.3: 178
OFF_E, OFF_S, OFF_REQ, OFF_MAC1 = 2, 34, 82, 162

# --- Primitives --------------------------------------------------------------

def blake2s(data):
    return hashlib.blake2s(data).digest()

def hmac_blake2s(key, data):
    return hmac.new(key, data, hashlib.blake2s).digest()

def hkdf2(chaining_key, ikm):
    """Noise's HKDF with two outputs (Noise spec section 4.3)."""
    temp = hmac_blake2s(chaining_key, ikm)
    out1 = hmac_blake2s(temp, b"\x01")
    out2 = hmac_blake2s(temp, out1 + b"\x02")
    return out1, out2

def x25519_public(private):
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()

def x25519(private, public):
    return X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(public))

def aead_encrypt(key, n, ad, plaintext):
    nonce = b"\x00" * 4 + struct.pack("<Q", n)   # Noise's ChaChaPoly nonce
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)

def mac1_key(server_public):
    return blake2s(MAC1_LABEL + server_public)

def mac1(server_public, data):
    return hashlib.blake2s(data, key=mac1_key(server_public), digest_size=16).digest()

# --- Noise_X initiator, message 1 (Noise spec sections 5 and 7.4) ------------

class SymmetricState:
    def __init__(self):
        # The name is exactly HASHLEN (32) bytes, so h is the name itself.
        assert len(PROTOCOL_NAME) == 32
        self.h = PROTOCOL_NAME
        self.ck = self.h
        self.k = None
        self.n = 0

    def mix_hash(self, data):
        self.h = blake2s(self.h + data)

    def mix_key(self, ikm):
        self.ck, self.k = hkdf2(self.ck, ikm)
        self.n = 0

    def encrypt_and_hash(self, plaintext):
        c = aead_encrypt(self.k, self.n, self.h, plaintext)
        self.n += 1
        self.mix_hash(c)
        return c

def noise_x_message(client_private, server_public, ephemeral_private, payload,
                    prologue=PROLOGUE_LABEL + HEADER, ephemeral_public=None,
                    client_public=None, es=None, ss=None):
    """Returns e || enc(s) || enc(payload). The keyword arguments after the
    prologue replace a value or a DH result, to build knocks that a doorman
    must refuse (a small-order key yields an all-zero DH result)."""
    st = SymmetricState()
    st.mix_hash(prologue)
    st.mix_hash(server_public)                       # pre-message: <- s
    e_pub = ephemeral_public or x25519_public(ephemeral_private)
    st.mix_hash(e_pub)                               # -> e
    st.mix_key(es if es is not None else x25519(ephemeral_private, server_public))   # es
    s_pub = client_public or x25519_public(client_private)
    enc_s = st.encrypt_and_hash(s_pub)               # s
    st.mix_key(ss if ss is not None else x25519(client_private, server_public))      # ss
    enc_payload = st.encrypt_and_hash(payload)
    return e_pub + enc_s + enc_payload

def knock(client_private, server_public, ephemeral_private, request, **kw):
    body = HEADER + noise_x_message(client_private, server_public, ephemeral_private, request, **kw)
    datagram = body + mac1(server_public, body)
    assert len(datagram) == KNOCK_LEN
    return datagram

def remac(datagram, server_public):
    """Recomputes mac1 so that a tampered knock gets past the cheap checks."""
    body = datagram[:OFF_MAC1]
    return body + mac1(server_public, body)

# --- The request (MODERN-12.7) ------------------------------------------------

def request(time, port, source=None, source_port=0, flags=None, family=None,
            addr=None, fwd_family=0, fwd_addr=b"\x00" * 16, fwd_port=0, padding=None):
    """Encodes a request; the keyword arguments after source_port override a
    field to build malformed requests."""
    if source is None:
        fam, a = 0, b"\x00" * 16
    else:
        ip = ipaddress.ip_address(source)
        fam = 4 if ip.version == 4 else 6
        a = ip.packed.ljust(16, b"\x00")
    fam = fam if family is None else family
    a = a if addr is None else addr
    fl = (1 if source_port else 0) if flags is None else flags
    body = struct.pack(">QHBB16sHB16sH", time, port, fl, fam, a, source_port, fwd_family, fwd_addr, fwd_port)
    pad = b"\x00" * (REQUEST_LEN - len(body)) if padding is None else padding
    out = body + pad
    assert len(out) == REQUEST_LEN, len(out)
    return out

# --- Fixed keys ------------------------------------------------------------------

def test_private(label):
    """A deterministic private key, clamped as wg genkey clamps."""
    k = bytearray(blake2s(b"doorman test vector key: " + label.encode()))
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    return bytes(k)

def ephemeral(label):
    """A deterministic ephemeral private key: the 32 bytes a knocker's random
    generator supplies (not clamped: X25519 clamps)."""
    return blake2s(b"doorman test vector ephemeral: " + label.encode())

def b64(b):
    return b64encode(b).decode()

KEYS = {name: test_private(name) for name in ["server-a", "server-b", "alice", "bob", "mallory"]}
PUB = {name: x25519_public(k) for name, k in KEYS.items()}

T0 = 1767225600 * 10**9  # 2026-01-01T00:00:00Z in Unix nanoseconds
SEC = 10**9

# --- Valid knocks ------------------------------------------------------------------

valid_specs = [
    # name, requirement, client, time, port, source, source_port
    ("ipv4-stated", "MODERN-12.3", "alice", T0, 22, "198.18.0.7", 0),
    ("ipv6-stated-source-port", "MODERN-12.7", "bob", T0 + 5 * SEC, 2222, "2001:db8::7", 50123),
    ("as-seen", "MODERN-12.7", "alice", T0 + 1, 443, None, 0),
    ("as-seen-source-port", "MODERN-12.7", "alice", T0 + 2, 65535, None, 1),
    ("ipv4-source-port-max", "MODERN-12.7", "bob", T0 + 3, 1, "198.18.255.254", 65535),
    ("time-zero", "MODERN-12.9", "alice", 0, 22, None, 0),
    ("time-max", "MODERN-12.9", "alice", 2**64 - 1, 22, None, 0),
    ("unknown-client", "MODERN-12.13", "mallory", T0, 22, "198.18.0.9", 0),
    ("bob-port-22", "MODERN-12.16", "bob", T0 + 4, 22, "2001:db8::7", 0),
]
valid, by_name = [], {}
for name, req, client, t, port, src, sport in valid_specs:
    eph = ephemeral(name)
    plain = request(t, port, src, sport)
    d = knock(KEYS[client], PUB["server-a"], eph, plain)
    by_name[name] = d
    valid.append({
        "name": name, "requirement": req, "client": client, "server": "server-a",
        "ephemeral_private": b64(eph),
        "request": {"time": t, "port": port, "source": src or "", "source_port": sport},
        "request_hex": plain.hex(), "datagram_hex": d.hex(),
    })

# --- Knocks a doorman must refuse, and the check that refuses them -------------------

A, B = PUB["server-a"], PUB["server-b"]
good = by_name["ipv4-stated"]
alice, eph0 = KEYS["alice"], ephemeral("ipv4-stated")
plain0 = request(T0, 22, "198.18.0.7")

def flip(d, i, bit=0x01):
    return d[:i] + bytes([d[i] ^ bit]) + d[i + 1:]

def sealed(plain, label):
    return knock(alice, A, ephemeral(label), plain)

SMALL_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")  # order 8

reject_specs = [
    # Form (MODERN-12.3, 12.4): refused before mac1; the type is checked
    # before the length.
    ("empty", "MODERN-12.3/2", b"", "length"),
    ("magic-only", "MODERN-12.3/2", bytes([MAGIC]), "length"),
    ("one-byte-short", "MODERN-12.3/2", good[:-1], "length"),
    ("one-byte-long", "MODERN-12.3/2", good + b"\x00", "length"),
    ("max-udp-prefilter-size", "MODERN-12.3/2", good + b"\x00" * (255 - KNOCK_LEN), "length"),
    ("type-two-short", "MODERN-12.4", good[:1] + b"\x02" + good[2:100], "type"),
    ("wrong-magic", "MODERN-12.4", remac(b"\xd3" + good[1:], A), "not-modern"),
    ("classic-first-byte", "MODERN-12.4", remac(b"2" + good[1:], A), "not-modern"),
    ("type-zero", "MODERN-12.4", remac(good[:1] + b"\x00" + good[2:], A), "type"),
    ("type-two", "MODERN-12.4", remac(good[:1] + b"\x02" + good[2:], A), "type"),
    # mac1 (MODERN-12.6/2): any change without the server's public key.
    ("tamper-ephemeral", "MODERN-12.6/2", flip(good, OFF_E), "mac1"),
    ("tamper-static", "MODERN-12.6/2", flip(good, OFF_S + 5), "mac1"),
    ("tamper-request", "MODERN-12.6/2", flip(good, OFF_REQ + 10), "mac1"),
    ("tamper-mac1-first", "MODERN-12.6/2", flip(good, OFF_MAC1), "mac1"),
    ("tamper-mac1-last", "MODERN-12.6/2", flip(good, KNOCK_LEN - 1, 0x80), "mac1"),
    ("mac1-zero", "MODERN-12.6/2", good[:OFF_MAC1] + b"\x00" * 16, "mac1"),
    ("made-for-server-b", "MODERN-12.6/2", knock(alice, B, eph0, plain0), "mac1"),
    # Noise (MODERN-12.5): past mac1 (recomputed), refused by the AEAD or DH.
    ("tamper-ephemeral-remac", "MODERN-12.5", remac(flip(good, OFF_E + 31, 0x40), A), "decrypt"),
    ("tamper-static-remac", "MODERN-12.5", remac(flip(good, OFF_S), A), "decrypt"),
    ("tamper-static-tag-remac", "MODERN-12.5", remac(flip(good, OFF_REQ - 1), A), "decrypt"),
    ("tamper-request-remac", "MODERN-12.5", remac(flip(good, OFF_REQ + 20), A), "decrypt"),
    ("tamper-request-tag-remac", "MODERN-12.5", remac(flip(good, OFF_MAC1 - 1), A), "decrypt"),
    ("encrypted-to-server-b-mac1-for-a", "MODERN-12.5", remac(knock(alice, B, eph0, plain0), A), "decrypt"),
    ("prologue-type-two", "MODERN-12.5",
     remac(HEADER + noise_x_message(alice, A, eph0, plain0, prologue=PROLOGUE_LABEL + b"\xd2\x02"), A), "decrypt"),
    ("prologue-other-label", "MODERN-12.5",
     remac(HEADER + noise_x_message(alice, A, eph0, plain0, prologue=b"doorman modern knock v2" + HEADER), A), "decrypt"),
    # Small-order keys make a DH result all zero; a doorman that does not
    # refuse that result would accept these (MODERN-12.5).
    ("ephemeral-zero", "MODERN-12.5",
     remac(HEADER + noise_x_message(alice, A, eph0, plain0, ephemeral_public=b"\x00" * 32, es=b"\x00" * 32), A), "decrypt"),
    ("ephemeral-small-order", "MODERN-12.5",
     remac(HEADER + noise_x_message(alice, A, eph0, plain0, ephemeral_public=SMALL_ORDER, es=b"\x00" * 32), A), "decrypt"),
    ("static-zero", "MODERN-12.5",
     remac(HEADER + noise_x_message(alice, A, eph0, plain0, client_public=b"\x00" * 32, ss=b"\x00" * 32), A), "decrypt"),
    ("static-small-order", "MODERN-12.5",
     remac(HEADER + noise_x_message(alice, A, eph0, plain0, client_public=SMALL_ORDER, ss=b"\x00" * 32), A), "decrypt"),
    # Authentic knocks whose request breaks MODERN-12.8.
    ("port-zero", "MODERN-12.8/1", sealed(request(T0, 0, "198.18.0.7"), "r1"), "port"),
    ("flags-unknown-bit", "MODERN-12.8/1", sealed(request(T0, 22, "198.18.0.7", flags=0x02), "r2"), "flags"),
    ("flags-high-bit", "MODERN-12.8/1", sealed(request(T0, 22, None, 7, flags=0x81), "r3"), "flags"),
    ("source-port-flag-without-port", "MODERN-12.8/1", sealed(request(T0, 22, "198.18.0.7", flags=0x01), "r4"), "flags"),
    ("source-port-without-flag", "MODERN-12.8/1", sealed(request(T0, 22, "198.18.0.7", 1234, flags=0), "r5"), "flags"),
    ("source-family-five", "MODERN-12.8/1", sealed(request(T0, 22, "198.18.0.7", family=5), "r6"), "source"),
    ("source-ipv4-tail-set", "MODERN-12.8/1",
     sealed(request(T0, 22, addr=bytes([198, 18, 0, 7]) + b"\x00" * 11 + b"\x01", family=4), "r7"), "source"),
    ("as-seen-with-address", "MODERN-12.8/1",
     sealed(request(T0, 22, addr=bytes([198, 18, 0, 7]) + b"\x00" * 12, family=0), "r8"), "source"),
    ("source-ipv4-mapped", "MODERN-12.8/1",
     sealed(request(T0, 22, addr=ipaddress.ip_address("::ffff:198.18.0.7").packed, family=6), "r9"), "source"),
    ("source-ipv4-unspecified", "MODERN-12.8/1", sealed(request(T0, 22, "0.0.0.0"), "r10"), "source"),
    ("source-ipv6-unspecified", "MODERN-12.8/1", sealed(request(T0, 22, "::"), "r11"), "source"),
    ("forward-family-ipv4", "MODERN-12.8/1",
     sealed(request(T0, 22, "198.18.0.7", fwd_family=4, fwd_addr=bytes([198, 18, 9, 9]) + b"\x00" * 12, fwd_port=22), "r12"), "forward"),
    ("forward-address-without-family", "MODERN-12.8/1",
     sealed(request(T0, 22, "198.18.0.7", fwd_addr=b"\x00" * 15 + b"\x01"), "r13"), "forward"),
    ("forward-port-without-family", "MODERN-12.8/1", sealed(request(T0, 22, "198.18.0.7", fwd_port=80), "r14"), "forward"),
    ("padding-first-byte", "MODERN-12.8/1", sealed(request(T0, 22, "198.18.0.7", padding=b"\x01" + b"\x00" * 14), "r15"), "padding"),
    ("padding-last-byte", "MODERN-12.8/1", sealed(request(T0, 22, "198.18.0.7", padding=b"\x00" * 14 + b"\x80"), "r16"), "padding"),
]
reject = [{"name": n, "requirement": r, "datagram_hex": d.hex(), "error": e} for n, r, d, e in reject_specs]

# --- Checks after the guest lookup (daemon level, MODERN-12.11 to 12.17) ------------

guests = [
    {"name": "alice", "key": b64(PUB["alice"]), "ports": [22, 443, 65535], "addresses": ["198.18.0.0/16"]},
    {"name": "bob", "key": b64(PUB["bob"]), "ports": [1, 2222], "addresses": ["2001:db8::/32", "198.18.255.254"]},
]

def check(name, req, knock_name, now, src, expect, skew=None, window=60, door=None):
    c = {"name": name, "requirement": req, "knock": knock_name, "server_now": now,
         "window_seconds": window, "packet_source": src, "expect": expect}
    if skew is not None:
        c["skew_ns"] = skew
    if door is not None:
        c["door"] = door
    return c

checks = [
    check("accept-stated-ipv4", "MODERN-12.15", "ipv4-stated", T0, "198.18.0.7", "accept", 0, door="198.18.0.7"),
    check("accept-ipv4-mapped-source", "MODERN-12.15", "ipv4-stated", T0, "::ffff:198.18.0.7", "accept", 0, door="198.18.0.7"),
    check("accept-stated-ipv6", "MODERN-12.15", "ipv6-stated-source-port", T0, "2001:db8::7", "accept", 5 * SEC, door="2001:db8::7"),
    check("accept-as-seen", "MODERN-12.15", "as-seen", T0, "198.18.3.3", "accept", 1, door="198.18.3.3"),
    check("source-mismatch", "MODERN-12.15", "ipv4-stated", T0, "198.18.0.8", "source-mismatch", 0),
    check("source-mismatch-family", "MODERN-12.15", "ipv6-stated-source-port", T0, "198.18.255.254", "source-mismatch", 5 * SEC),
    check("unknown-guest", "MODERN-12.13", "unknown-client", T0, "198.18.0.9", "unknown-guest"),
    check("window-edge-behind", "MODERN-12.14", "ipv4-stated", T0 + 60 * SEC, "198.18.0.7", "accept", -60 * SEC, door="198.18.0.7"),
    check("window-edge-ahead", "MODERN-12.14", "ipv4-stated", T0 - 60 * SEC, "198.18.0.7", "accept", 60 * SEC, door="198.18.0.7"),
    check("too-old", "MODERN-12.14", "ipv4-stated", T0 + 60 * SEC + 1, "198.18.0.7", "clock-skew", -60 * SEC - 1),
    check("client-93-s-ahead", "MODERN-12.14", "ipv4-stated", T0 - 93 * SEC, "198.18.0.7", "clock-skew", 93 * SEC),
    check("wider-window", "MODERN-12.14", "ipv4-stated", T0 - 93 * SEC, "198.18.0.7", "accept", 93 * SEC, window=120, door="198.18.0.7"),
    check("time-zero", "MODERN-12.14", "time-zero", T0, "198.18.0.7", "clock-skew", -T0),
    check("time-max", "MODERN-12.14", "time-max", T0, "198.18.0.7", "clock-skew", 2**63 - 1),
    check("port-not-allowed", "MODERN-12.16", "bob-port-22", T0, "2001:db8::7", "port-not-allowed", 4),
    check("address-not-allowed", "MODERN-12.16", "as-seen", T0, "198.19.0.1", "address-not-allowed", 1),
    check("accept-bob-ipv4-port-1", "MODERN-12.16", "ipv4-source-port-max", T0, "198.18.255.254", "accept", 3, door="198.18.255.254"),
]

# Per-guest freshness (MODERN-12.17): each sequence starts with no knock
# accepted; a knock is accepted only if its time is later than the last one
# accepted from the same guest.
sequences = [
    {"name": "later-then-earlier", "requirement": "MODERN-12.17",
     "steps": [{"knock": "as-seen", "expect": "accept"}, {"knock": "ipv4-stated", "expect": "stale"}]},
    {"name": "same-knock-twice", "requirement": "MODERN-12.17",
     "steps": [{"knock": "ipv4-stated", "expect": "accept"}, {"knock": "ipv4-stated", "expect": "stale"}]},
    {"name": "increasing", "requirement": "MODERN-12.17",
     "steps": [{"knock": "ipv4-stated", "expect": "accept"}, {"knock": "as-seen", "expect": "accept"},
               {"knock": "as-seen-source-port", "expect": "accept"}, {"knock": "as-seen", "expect": "stale"}]},
    {"name": "guests-independent", "requirement": "MODERN-12.17",
     "steps": [{"knock": "ipv6-stated-source-port", "expect": "accept"}, {"knock": "ipv4-stated", "expect": "accept"},
               {"knock": "ipv4-source-port-max", "expect": "stale"}]},
]

doc = {
    "description": "Doorman modern knock test vectors, see spec/doorman.md section 12. A knock is "
                   "0xD2 0x01 || Noise_X_25519_ChaChaPoly_BLAKE2s message 1 (prologue 'doorman modern knock' || 0xD2 0x01, "
                   "payload the 64-byte request) || mac1 = BLAKE2s-128(key = BLAKE2s-256('doorman mac1' || server public key), "
                   "bytes 0-161). Keys are base64 (WireGuard's text form). 'valid': build each exactly from the client's "
                   "private key, the server's public key and the ephemeral private key (the 32 bytes the random generator "
                   "gives), and open each with the server's private key to the request and the client's public key. "
                   "'reject': a doorman MUST refuse each; 'error' names the check: length, not-modern, type (before mac1), "
                   "mac1, decrypt (Noise), or the request field (port, flags, source, forward, padding). 'checks': daemon-level "
                   "checks after opening a valid knock against 'guests', at 'server_now' (Unix ns) with the time window, "
                   "for a packet from 'packet_source'; 'expect' is accept, unknown-guest, clock-skew, source-mismatch, "
                   "port-not-allowed or address-not-allowed; 'skew_ns' is knock time minus server time (clamped to int64); "
                   "'door' the address the door is for. 'sequences': per-guest freshness, each from an empty state.",
    "generator": "spec/vectors/gen_modern.py (Python cryptography + hashlib, independent of the Go implementation)",
    "protocol": PROTOCOL_NAME.decode(),
    "prologue_hex": (PROLOGUE_LABEL + HEADER).hex(),
    "knock_length": KNOCK_LEN,
    "keys": {name: {"private": b64(KEYS[name]), "public": b64(PUB[name])} for name in KEYS},
    "mac1_keys_hex": {name: mac1_key(PUB[name]).hex() for name in ["server-a", "server-b"]},
    "guests": guests,
    "valid": valid,
    "reject": reject,
    "checks": checks,
    "sequences": sequences,
}
print(json.dumps(doc, indent=2))
