// Package deploy holds no code: its tests check that the deployment
// descriptions beside it (Compose, Marathon) are valid and agree with the
// configuration they run.
package deploy
