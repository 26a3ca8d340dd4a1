package masking

import "testing"

func BenchmarkDbg(b *testing.B) {
	p := allPolicy(b, "partial")
	for _, s := range []string{"pending", "Ada Lovelace", "12345", "1234.56", "2024-01-15T10:30:00Z", "221 Baker Street, 94103 London", `{"id": 12345, "status": "ok", "tags": ["a", "b"]}`, "The customer asked about an order that was delayed."} {
		v := []byte(s)
		b.Run(s[:min(len(s), 12)], func(b *testing.B) {
			for b.Loop() {
				p.MaskValue(nil, v, false)
			}
		})
	}
}
