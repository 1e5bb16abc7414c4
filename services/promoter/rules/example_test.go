package rules_test

import (
	"fmt"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/promoter/rules"
)

func Example() {
	r, err := rules.Compile(config.Promotion{
		Name:         "dev-to-tst",
		From:         "dev",
		To:           "tst",
		Repositories: []string{"apps/**"},
		Tags:         config.TagFilter{Semver: ">=0.0.0-0"},
	})
	if err != nil {
		panic(err)
	}
	for _, img := range [][2]string{
		{"apps/team/web", "v1.4.0-rc.2"},
		{"apps/web", "latest"},
		{"libs/base", "1.0.0"},
	} {
		if ok, reason := r.Matches(img[0], img[1]); ok {
			fmt.Println(img[0]+":"+img[1], "matches")
		} else {
			fmt.Println(img[0]+":"+img[1], "does not:", reason)
		}
	}
	// Output:
	// apps/team/web:v1.4.0-rc.2 matches
	// apps/web:latest does not: tag "latest" is not a semantic version (tags.semver ">=0.0.0-0")
	// libs/base:1.0.0 does not: repository "libs/base" matches none of ["apps/**"]
}

func ExampleRule_Target() {
	r, err := rules.Compile(config.Promotion{
		Name:             "tst-to-prd",
		From:             "tst",
		To:               "prd",
		Tags:             config.TagFilter{Semver: ">=1.0.0-0"},
		TargetRepository: `prod/{{ .Repository | trimPrefix "apps/" }}`,
		TargetTag:        `{{ .Tag | stripPrerelease }}`,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Target("apps/web", "v1.4.0-rc.2"))
	// Output: prod/web v1.4.0 <nil>
}

func ExampleRule_Target_regexReplace() {
	r, err := rules.Compile(config.Promotion{
		Name:      "tst-to-prd",
		From:      "tst",
		To:        "prd",
		Tags:      config.TagFilter{Regex: `[0-9]+\.[0-9]+\.[0-9]+-rc\.[0-9]+`},
		TargetTag: `{{ regexReplace "-rc\\.[0-9]+$" "" .Tag }}`,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Target("apps/web", "1.4.0-rc.2"))
	// Output: apps/web 1.4.0 <nil>
}

func ExampleCompile_error() {
	_, err := rules.Compile(config.Promotion{
		Name:      "tst-to-prd",
		From:      "tst",
		To:        "prd",
		Tags:      config.TagFilter{Semver: ">=1.0.0", Regex: ".*"},
		TargetTag: "{{ .Tag | strip }}",
	})
	fmt.Println(err)
	// Output:
	// tags: set semver or regex, not both
	// targetTag: template: targetTag:1: function "strip" not defined
}

func ExampleCompileAll() {
	_, err := rules.CompileAll([]config.Promotion{
		{Name: "dev-to-tst", From: "dev", To: "tst"},
		{Name: "tst-to-prd", From: "tst", To: "prd", Tags: config.TagFilter{Semver: "latest"}},
	})
	fmt.Println(err)
	// Output: promotions[1].tags.semver: improper constraint: "latest"
}
