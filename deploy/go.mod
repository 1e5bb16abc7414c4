module github.com/slipway-cd/slipway/deploy

go 1.26.0

require (
	github.com/slipway-cd/slipway/pkg/events v0.0.0-00010101000000-000000000000
	github.com/slipway-cd/slipway/pkg/platform v0.0.0-00010101000000-000000000000
	github.com/slipway-cd/slipway/tools/marathon-emulator v0.0.0-00010101000000-000000000000
)

require github.com/compose-spec/compose-go/v2 v2.16.2 // indirect

replace (
	github.com/slipway-cd/slipway/pkg/events => ../pkg/events
	github.com/slipway-cd/slipway/pkg/platform => ../pkg/platform
	github.com/slipway-cd/slipway/tools/marathon-emulator => ../tools/marathon-emulator
)
