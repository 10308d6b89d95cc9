//go:build linux

package sim

import (
	"encoding/json"
	"fmt"
)

// countSetElements counts the elements of table's sets in the output of
// `nft -j list sets`, except the constant set of protected ports: one for
// each door stage in the kernel (armed, claimed, narrow).
func countSetElements(nftJSON []byte, table string) (int, error) {
	var out struct {
		Nftables []struct {
			Set *struct {
				Name  string            `json:"name"`
				Table string            `json:"table"`
				Elem  []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(nftJSON, &out); err != nil {
		return -1, fmt.Errorf("nft -j: %w", err)
	}
	n := 0
	for _, o := range out.Nftables {
		if o.Set != nil && o.Set.Table == table && o.Set.Name != "protected" {
			n += len(o.Set.Elem)
		}
	}
	return n, nil
}
