module github.com/slipway-cd/slipway/services/deployer

go 1.26.0

require (
	github.com/slipway-cd/slipway/pkg/events v0.0.0-00010101000000-000000000000
	github.com/slipway-cd/slipway/pkg/platform v0.0.0-00010101000000-000000000000
	github.com/slipway-cd/slipway/pkg/testkit v0.0.0-00010101000000-000000000000
	github.com/slipway-cd/slipway/tools/marathon-emulator v0.0.0-00010101000000-000000000000
)

require (
	github.com/Masterminds/semver/v3 v3.5.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
)

replace (
	github.com/slipway-cd/slipway/pkg/events => ../../pkg/events
	github.com/slipway-cd/slipway/pkg/platform => ../../pkg/platform
	github.com/slipway-cd/slipway/pkg/testkit => ../../pkg/testkit
	github.com/slipway-cd/slipway/tools/marathon-emulator => ../../tools/marathon-emulator
)
