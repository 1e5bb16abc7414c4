// Package docker is the deploy target of a Docker Engine endpoint: a
// standalone Docker host or a vSphere Integrated Containers Virtual
// Container Host (VCH). Its workloads are its containers (List and Get
// report every one, for the inventory); only those that carry the
// slipway.policy label are ever updated. A workload's ID is the
// container's name.
//
// # Updating by recreating
//
// No engine changes a container's image in place (and a VCH answers "not
// supported" to POST /containers/{id}/update), so an update recreates the
// container, using only calls a VCH serves (create, start, stop, rename,
// remove, inspect, list, logs, events, image pull, ping, info):
//
//  1. pull the new image (by digest when the reference has one);
//  2. create <name>.slipway-next from the old container's configuration
//     with the new image, labelled with the id and image it replaces;
//  3. stop <name>;
//  4. rename <name> to <name>.slipway-prev;
//  5. rename <name>.slipway-next to <name>;
//  6. start <name>;
//  7. (Await, once the new container is healthy) remove <name>.slipway-prev.
//
// A rollback stops the new container, renames it <name>.slipway-failed,
// renames <name>.slipway-prev back to <name>, starts it and removes the
// failed one: the host ends with the very container it had (same id, same
// configuration) under its name.
//
// # Crash safety
//
// Nothing is kept outside the engine: the names and labels on the host say
// how far an operation got, and every method, called again after the
// process died between any two calls, reads them and carries on (see
// hostState). Get reports a workload whose recreate is half done with the
// rollout in Rollouts, even while no container bears its name.
//
// # Which configuration is copied
//
// docker inspect's Config merges what the user set with what the image
// brings (environment, command, entrypoint, healthcheck, labels, user,
// working directory, exposed ports, volumes, stop signal). Copying it whole
// would pin the old image's values onto the new image, so a value equal to
// the old image's own is taken as the image's and left for the new image to
// bring; everything else is the user's and is copied. HostConfig is the
// user's alone and is copied whole. The hostname is dropped when the engine
// made it up (the old id's first twelve digits, or the host's own name under
// network mode host). Anonymous volumes of the old container are carried
// over by name, as docker compose does, so their data survives.
package docker
