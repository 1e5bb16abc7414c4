package inventory

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// ListAll returns every record of the bucket, sorted by cluster and app,
// for readers (slipway status and where, the console). Before any
// deployer created the bucket nothing is recorded, which is no error.
func ListAll(ctx context.Context, js jetstream.JetStream) ([]Record, error) {
	inv, err := Bind(ctx, js)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return inv.List(ctx)
}
