// Package promoter is Slipway's promoter service: it applies the
// configuration's promotion rules to every image pushed to a rule's source
// environment and copies matching images, by digest, to the next stage's
// registry — at once, after a soak time, or once a release manager approved.
// Because the copy lands in the next registry, that registry's own webhook
// makes the next stage's deployment happen: the chain runs itself.
package promoter
