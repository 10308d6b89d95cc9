#!/usr/bin/env python3
"""Generates classic.json from an implementation independent of the Go code
(Python's hmac module), so the Go tests check one implementation against
another. Run: python3 spec/vectors/gen_classic.py > spec/vectors/classic.json"""
import hmac, hashlib, json

SPECIALS = "!@$%^&*()_-+=|\\[]{};:'\"<>,?/"

def payload(secret, port, group, tag):
    signed = f"{port} {group} {tag:010d}"
    mac = hmac.new(signed.encode(), secret.encode(), hashlib.md5).hexdigest()
    return f"{signed} {mac}"

valid = [
    ("original-client-capture", "s3cretKnock", 2222, "alice", 1900216097, "CLASSIC-3.1"),
    ("tag-zero", "s3cretKnock", 22, "alice", 0, "CLASSIC-2.2"),
    ("tag-max", "s3cretKnock", 22, "alice", 4294967295, "CLASSIC-2.2"),
    ("port-min", "s3cretKnock", 1, "alice", 1234567890, "CLASSIC-2.2"),
    ("port-max", "s3cretKnock", 65535, "alice", 1234567890, "CLASSIC-2.2"),
    ("group-1-char", "x", 22, "a", 42, "CLASSIC-2.2"),
    ("group-32-chars", "s3cretKnock", 65535, "abcdefghijklmnopqrstuvwxyz012345", 4294967295, "CLASSIC-2.2"),
    ("group-all-specials", "s3cretKnock", 2222, "g" + SPECIALS, 7, "CLASSIC-2.2"),
    ("secret-all-specials", "s" + SPECIALS, 22, "bob", 99, "CLASSIC-3.1"),
    ("secret-64-bytes", "A" * 64, 22, "alice", 1, "CLASSIC-3.1"),
    ("secret-65-bytes", "B" * 65, 22, "alice", 2, "CLASSIC-3.1"),
    ("secret-255-bytes", ("0123456789abcdef" * 16)[:255], 443, "carol", 3, "CLASSIC-3.1"),
    ("secret-1000-bytes", ("K3y-" * 250), 443, "carol", 4, "CLASSIC-3.1"),
    ("secret-1-byte", "z", 80, "dave", 5, "CLASSIC-3.1"),
    ("max-length-payload", "s3cretKnock", 65535, "Z" * 32, 4294967295, "CLASSIC-2.3"),
    ("min-length-payload", "s3cretKnock", 1, "a", 0, "CLASSIC-2.3"),
]
vectors = []
for name, secret, port, group, tag, req in valid:
    vectors.append({"name": name, "requirement": req, "secret": secret, "port": port,
                    "group": group, "tag": tag, "payload": payload(secret, port, group, tag)})

ok = payload("s3cretKnock", 2222, "alice", 1900216097)
sig, mac = ok.rsplit(" ", 1)
# Payloads a daemon MUST still accept as the given vector (CLASSIC-2.4, 2.5).
lenient = [
    {"name": "upper-case-hex", "requirement": "CLASSIC-2.5", "payload": sig + " " + mac.upper(), "same_as": "original-client-capture"},
    {"name": "final-newline", "requirement": "CLASSIC-2.4", "payload": ok + "\n", "same_as": "original-client-capture"},
]
# Payloads a daemon MUST reject, and the field the rejection names.
bad = [
    ("leading-zero-port", "0" + ok, "port", "CLASSIC-2.2"),
    ("port-zero", "0 alice 1900216097 " + mac, "port", "CLASSIC-2.2"),
    ("port-too-big", "70000 alice 1900216097 " + mac, "port", "CLASSIC-2.2"),
    ("port-six-digits", "122222 alice 1900216097 " + mac, "port", "CLASSIC-2.2"),
    ("port-not-digits", "22a2 alice 1900216097 " + mac, "port", "CLASSIC-2.2"),
    ("double-space", "2222  alice 1900216097 " + mac, "length", "CLASSIC-2.1"),
    ("trailing-junk", ok + " extra", "length", "CLASSIC-2.1"),
    ("three-fields", "2222 somebody 1234567890", "length", "CLASSIC-2.3"),
    ("tag-short", "2222 alice 190021609 " + mac, "length", "CLASSIC-2.2"),
    ("tag-non-numeric", "2222 alice 19002160x7 " + mac, "tag", "CLASSIC-2.2"),
    ("tag-too-big", "2222 alice 4294967296 " + mac, "tag", "CLASSIC-2.2"),
    ("mac-short", "2222 alice 1900216097 " + mac[:31], "length", "CLASSIC-2.1"),
    ("mac-not-hex", "2222 alice 1900216097 " + mac[:31] + "g", "hmac", "CLASSIC-2.2"),
    ("group-33-chars", "2222 " + "a" * 33 + " 1900216097 " + mac, "group", "CLASSIC-2.2"),
    ("group-with-dot", "2222 al.ce 1900216097 " + mac, "group", "CLASSIC-2.2"),
    ("group-with-hash", "2222 al#ce 1900216097 " + mac, "group", "CLASSIC-2.2"),
    ("crlf", ok + "\r\n", "length", "CLASSIC-2.4"),
    ("two-newlines", ok + "\n\n", "length", "CLASSIC-2.4"),
    ("empty", "", "length", "CLASSIC-2.3"),
    ("leading-space", " " + ok, "length", "CLASSIC-2.1"),
    ("modern-magic", "\u00d2" + ok[1:], "length", "CLASSIC-2.6"),
]
rejects = [{"name": n, "requirement": r, "payload": p, "payload_hex": p.encode("latin-1").hex(), "field": f} for n, p, f, r in bad]

doc = {
    "description": "Doorman classic (0.81) knock test vectors, see spec/doorman.md sections 2 and 3. "
                   "payload = '<port> <group> <tag as 10 digits> ' + hex(HMAC-MD5(key='<port> <group> <tag>', message=secret)). "
                   "'valid': build these exactly. 'lenient': a daemon MUST accept each as the named valid vector. "
                   "'reject': a daemon MUST reject each; 'field' is the field the rejection names ('length' covers "
                   "size, first byte and field count). Strings are UTF-8 JSON; every payload byte is ASCII except in "
                   "'modern-magic' whose first byte is 0xD2; 'payload_hex' gives every reject payload's exact bytes.",
    "generator": "spec/vectors/gen_classic.py (Python hmac, independent of the Go implementation)",
    "valid": vectors,
    "lenient": lenient,
    "reject": rejects,
}
print(json.dumps(doc, indent=2, ensure_ascii=False))
