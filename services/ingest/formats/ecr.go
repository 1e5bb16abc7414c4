package formats

import (
	"regexp"
	"strings"
)

// Amazon ECR "ECR Image Action" events, forwarded unchanged (no input
// transformer) by an EventBridge rule to an API destination. One event per
// manifest: a multi-arch push sends each child without image-tag.

func init() { register("ecr", parseECR) }

type ecrEvent struct {
	ID         string `json:"id"`
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Account    string `json:"account"`
	Time       string `json:"time"`
	Region     string `json:"region"`
	Detail     *struct {
		Result            string `json:"result"`
		ActionType        string `json:"action-type"`
		RepositoryName    string `json:"repository-name"`
		ImageDigest       string `json:"image-digest"`
		ImageTag          string `json:"image-tag"`
		ManifestMediaType string `json:"manifest-media-type"`
	} `json:"detail"`
}

var (
	ecrAccount = regexp.MustCompile(`^[0-9]{12}$`)
	ecrRegion  = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+)+-[0-9]+$`)
)

func parseECR(d Delivery) (Result, error) {
	var ev ecrEvent
	if err := decodeObject("ecr", "body", d.Body, &ev); err != nil {
		return Result{}, err
	}
	switch {
	case ev.Source == "":
		return Result{}, malformed("ecr: source is missing")
	case ev.Source != "aws.ecr":
		return Result{}, malformed("ecr: source %q is not aws.ecr", ev.Source)
	case ev.ID == "":
		return Result{}, malformed("ecr: id is missing")
	case ev.DetailType == "":
		return Result{}, malformed("ecr: detail-type is missing")
	case ev.DetailType != "ECR Image Action":
		// scans, replication, pull-through cache, referrer actions.
		return Result{Ignored: 1}, nil
	case ev.Detail == nil:
		return Result{}, malformed("ecr: detail is missing")
	case ev.Detail.ActionType == "":
		return Result{}, malformed("ecr: detail.action-type is missing")
	case ev.Detail.ActionType != "PUSH", ev.Detail.Result != "SUCCESS":
		// DELETE, and failed actions.
		return Result{Ignored: 1}, nil
	case !ecrAccount.MatchString(ev.Account):
		return Result{}, malformed("ecr: account %q is not a 12-digit AWS account id", ev.Account)
	case !ecrRegion.MatchString(ev.Region):
		return Result{}, malformed("ecr: region %q is not an AWS region", ev.Region)
	}
	det := ev.Detail
	if det.ImageDigest == "" {
		return Result{}, malformed("ecr: detail.image-digest is missing")
	}
	if err := checkImage("ecr", "detail.repository-name", det.RepositoryName, "detail.image-tag", det.ImageTag, "detail.image-digest", det.ImageDigest); err != nil {
		return Result{}, err
	}
	at, err := optionalTime("ecr", "time", ev.Time)
	if err != nil {
		return Result{}, err
	}
	return Result{Pushes: []Push{{
		Registry:   ecrHost(ev.Account, ev.Region),
		Repository: det.RepositoryName,
		Tag:        det.ImageTag,
		Digest:     det.ImageDigest,
		MediaType:  det.ManifestMediaType,
		UpstreamID: ev.ID,
		PushedAt:   at,
	}}}, nil
}

// ecrHost is the registry endpoint of a private registry; the China
// partition lives under amazonaws.com.cn.
func ecrHost(account, region string) string {
	host := account + ".dkr.ecr." + region + ".amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		host += ".cn"
	}
	return host
}
