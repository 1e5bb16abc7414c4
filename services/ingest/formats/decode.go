package formats

// Decoding payload JSON into a format's structs, with errors that name the
// format and the part of the payload that is wrong.

import (
	"bytes"
	"encoding/json"
)

// decodeJSON unmarshals a payload, turning a syntax or type error into a
// malformed error that names the format.
func decodeJSON(format, what string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return malformed("%s: %s is not the expected JSON: %v", format, what, err)
	}
	return nil
}

// jsonObject reports whether raw JSON is an object: decoding "null" or a
// bare value into a struct succeeds silently, which would let a payload
// without the fields that make the format through as "missing fields".
func jsonObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// decodeObject decodes what must be a JSON object into v: the
// body of every JSON format, and the objects nested in some.
func decodeObject(format, what string, raw []byte, v any) error {
	if !jsonObject(raw) {
		return malformed("%s: %s is not a JSON object", format, what)
	}
	return decodeJSON(format, what, raw, v)
}
