package slack

import (
	"encoding/json"
	"time"
)

// MetadataType is the event_type of a parent's metadata.
const MetadataType = metadataType

// ClaimValue is the KV value of a claim written at at (unsure: its post
// ended without an answer), as a delivery that died would leave it.
func ClaimValue(at time.Time, unsure bool) []byte {
	b, _ := json.Marshal(entry{ClaimedAt: at.UTC(), Claimant: "dead", Unsure: unsure})
	return b
}

// ParentValue is the KV value of a recorded parent.
func ParentValue(channelID, ts string) []byte {
	b, _ := json.Marshal(entry{Channel: channelID, TS: ts})
	return b
}
