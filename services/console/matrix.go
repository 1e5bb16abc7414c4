package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/services/deployer/compliance"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// matrixView is the release matrix: applications (rows, grouped by the
// image's repository) × environments and their clusters (columns). The
// HTML page and /api/matrix show the same value.
type matrixView struct {
	Envs   []matrixEnv   `json:"environments"`
	Groups []matrixGroup `json:"groups"`
	// Workloads counts the rows (applications); Gaps the rows whose later
	// environment lacks what an earlier one runs.
	Workloads int `json:"workloads"`
	Gaps      int `json:"gaps"`
	// Filter is the query (?env=, ?repository=); Choices the environments
	// the filter offers (every visible one).
	Filter  matrixQuery `json:"filter"`
	Choices []string    `json:"-"`
	// Problem says what could not be read (the compliance record): the
	// matrix shows the rest.
	Problem string `json:"problem,omitempty"`
	// Live is how the page follows the stream.
	Live liveRegion `json:"-"`
}

type matrixQuery struct {
	Env        string `json:"env,omitempty"`
	Repository string `json:"repository,omitempty"`
}

// matrixEnv is a column group: an environment and its clusters, in the
// configuration's order (clusters only the inventory knows come last).
type matrixEnv struct {
	Name     string   `json:"name"`
	Clusters []string `json:"clusters"`
}

// matrixGroup is the rows of one repository.
type matrixGroup struct {
	Repository string      `json:"repository"`
	Rows       []matrixRow `json:"rows"`
}

// matrixRow is one application across every column: the workloads that
// run one repository under one name, whatever path each environment puts
// it under (Marathon's /dev/web, /tst/web and /prd/web are the row
// "web"). Cells has one entry per cluster column, in the columns' order,
// nil where the application does not run; each cell names its workload.
type matrixRow struct {
	// Name is the row's label: the workload id when every cell has the
	// same one, else the name the ids share.
	Name  string        `json:"name"`
	Cells []*matrixCell `json:"cells"`
	// Gaps name what a later environment lacks: the newest digest of the
	// environment before it.
	Gaps []matrixGap `json:"gaps,omitempty"`
}

// matrixGap: From runs Digest (Tag) and To, the next environment with the
// workload, does not.
type matrixGap struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"digest"`
}

// matrixCell is what one cluster runs of the application: the workload
// AppID.
type matrixCell struct {
	Env     string `json:"environment"`
	Cluster string `json:"cluster"`
	AppID   string `json:"appId"`
	Tag     string `json:"tag,omitempty"`
	Digest  string `json:"digest,omitempty"`
	Managed bool   `json:"managed"`
	// Wanted and Healthy count the instances; Counted is false for a
	// record without counts (written before Slipway counted them).
	Wanted  int  `json:"wanted"`
	Healthy int  `json:"healthy"`
	Counted bool `json:"counted"`
	// InFlight is the image of a deployment in progress.
	InFlight string `json:"inFlight,omitempty"`
	// Drift is what the workload runs by hand; LeftManagement why Slipway
	// no longer manages it.
	Drift          string `json:"drift,omitempty"`
	LeftManagement string `json:"leftManagement,omitempty"`
	// Violations are the compliance rules it breaks.
	Violations []matrixViolation `json:"violations,omitempty"`
	// Refused is a direct push it was not given, and by whom.
	Refused   string `json:"refused,omitempty"`
	RefusedBy string `json:"refusedBy,omitempty"`
	// Gap is set on the cell of a later environment that lacks what the
	// earlier one runs.
	Gap *matrixGap `json:"gap,omitempty"`
	// Actions are the workload's buttons (roll back, redeploy) for a user
	// who may operate in its environment; nil otherwise. The page only:
	// they depend on who asks and carry the session's CSRF token.
	Actions *actionsView `json:"-"`

	pushedAt, updatedAt int64
}

type matrixViolation struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// Health is the cell's health as the badge shows it: ok, warn, or "" when
// unknown.
func (c *matrixCell) Health() string {
	switch {
	case !c.Counted:
		return ""
	case c.Wanted > 0 && c.Healthy >= c.Wanted:
		return "ok"
	case c.Wanted == 0:
		return "info" // scaled to zero
	}
	return "warn"
}

// buildMatrix lays out records (already limited to the environments the
// user may view) in the columns of envs.
func buildMatrix(envs []matrixEnv, records []inventory.Record, violations []compliance.Violation) matrixView {
	// Columns: the configured clusters of each environment, then those only
	// the inventory names.
	col := map[[2]string]int{}
	envIdx := map[string]int{}
	for i, e := range envs {
		envIdx[e.Name] = i
	}
	for _, r := range records {
		i, ok := envIdx[r.Environment]
		if ok && !slices.Contains(envs[i].Clusters, r.Cluster) {
			envs[i].Clusters = append(envs[i].Clusters, r.Cluster)
		}
	}
	n := 0
	for _, e := range envs {
		for _, cl := range e.Clusters {
			col[[2]string{e.Name, cl}] = n
			n++
		}
	}
	byWorkload := map[string][]matrixViolation{}
	for _, v := range violations {
		k := inventory.Key(v.Cluster, v.AppID)
		byWorkload[k] = append(byWorkload[k], matrixViolation{Rule: v.Rule, Detail: v.Detail})
	}

	// A row is an application: its repository and its workloads' name.
	// Two workloads of one cluster with the same name and repository
	// (/team-a/web and /team-b/web) would share a cell: those ids keep
	// rows of their own, in every environment, by their full ids. Such a
	// clash is rare: the records are laid out again only when one shows.
	type rowKey struct {
		repo, name string
		full       bool
	}
	place := func(apart map[[2]string]bool) (map[rowKey]*matrixRow, map[[2]string]bool) {
		rows, clash := map[rowKey]*matrixRow{}, map[[2]string]bool{}
		for _, r := range records {
			ci, ok := col[[2]string{r.Environment, r.Cluster}]
			if !ok {
				continue
			}
			k := rowKey{repo: repoOf(r), name: workloadName(r.AppID)}
			if apart[[2]string{k.repo, r.AppID}] {
				k.name, k.full = r.AppID, true
			}
			row := rows[k]
			if row == nil {
				row = &matrixRow{Name: k.name, Cells: make([]*matrixCell, n)}
				rows[k] = row
			}
			if c := row.Cells[ci]; c != nil && c.AppID != r.AppID {
				clash[[2]string{k.repo, c.AppID}], clash[[2]string{k.repo, r.AppID}] = true, true
			}
			row.Cells[ci] = cellOf(r, byWorkload[inventory.Key(r.Cluster, r.AppID)])
		}
		return rows, clash
	}
	rows, clash := place(nil)
	if len(clash) > 0 {
		rows, _ = place(clash)
	}

	v := matrixView{Envs: envs}
	groups := map[string]*matrixGroup{}
	for k, row := range rows {
		row.Name = rowLabel(row.Name, row.Cells)
		row.Gaps = gapsOf(envs, row.Cells)
		if len(row.Gaps) > 0 {
			v.Gaps++
		}
		g := groups[k.repo]
		if g == nil {
			g = &matrixGroup{Repository: k.repo}
			groups[k.repo] = g
		}
		g.Rows = append(g.Rows, *row)
	}
	for _, g := range groups {
		slices.SortFunc(g.Rows, func(a, b matrixRow) int { return strings.Compare(a.Name, b.Name) })
		v.Groups = append(v.Groups, *g)
		v.Workloads += len(g.Rows)
	}
	slices.SortFunc(v.Groups, func(a, b matrixGroup) int { return strings.Compare(a.Repository, b.Repository) })
	if v.Groups == nil {
		v.Groups = []matrixGroup{}
	}
	return v
}

// repoOf is the repository a workload is grouped under: its image's,
// without the registry (a promotion copies it to another registry under
// the same name).
func repoOf(r inventory.Record) string {
	if r.Repository != "" {
		return r.Repository
	}
	return r.Image
}

// workloadName is a workload id without what differs per environment:
// a Marathon app id's last segment (/dev/web and /prd/web are both
// "web"); a Docker container's or Swarm service's name is itself.
func workloadName(id string) string {
	if i := strings.LastIndexByte(strings.TrimRight(id, "/"), '/'); i >= 0 {
		return strings.TrimRight(id[i+1:], "/")
	}
	return id
}

// rowLabel is a row's label: the workload id when every cell has the
// same one (an installation that names a workload alike everywhere reads
// it as it configured it), else name.
func rowLabel(name string, cells []*matrixCell) string {
	id := ""
	for _, c := range cells {
		switch {
		case c == nil:
		case id == "":
			id = c.AppID
		case c.AppID != id:
			return name
		}
	}
	return cmp.Or(id, name)
}

func cellOf(r inventory.Record, violations []matrixViolation) *matrixCell {
	c := &matrixCell{
		Env: r.Environment, Cluster: r.Cluster, AppID: r.AppID, Tag: r.Tag, Digest: r.Digest, Managed: r.Managed,
		Wanted: r.Wanted, Healthy: r.Healthy, Counted: r.Platform != "" || r.Wanted+r.Running+r.Healthy > 0,
		Drift: r.Drift, LeftManagement: r.LeftManagement, Violations: violations,
		pushedAt: r.PushedAt.UnixNano(), updatedAt: r.UpdatedAt.UnixNano(),
	}
	if d := r.LastDeployment; d != nil && d.Outcome == inventory.InProgress {
		c.InFlight = d.ToImage
	}
	if r.Refused != nil {
		c.Refused, c.RefusedBy = r.Refused.Image, r.Refused.Actor
	}
	return c
}

// gapsOf finds, for each pair of consecutive environments that both run
// the application, the newest digest of the earlier one that the later one
// does not run ("in tst, not in prd"), and marks the later one's cells.
// An environment without the application is not a gap: many run in some
// environments only. A cell whose digest is unknown (the platform names a
// tag only) runs the earlier digest when it has its tag: it cannot be told
// apart, so it is not called a gap.
func gapsOf(envs []matrixEnv, cells []*matrixCell) []matrixGap {
	var out []matrixGap
	var prev *matrixCell // the newest cell of the previous environment with a known digest
	var prevEnv string
	i := 0
	for _, e := range envs {
		group := cells[i : i+len(e.Clusters)]
		i += len(e.Clusters)
		var newest *matrixCell
		runs := false
		for _, c := range group {
			runs = runs || c != nil
			if c != nil && c.Digest != "" && (newest == nil || newerThan(c, newest)) {
				newest = c
			}
		}
		if !runs {
			continue
		}
		if prev != nil && !slices.ContainsFunc(group, func(c *matrixCell) bool { return c != nil && mayRun(c, prev) }) {
			g := matrixGap{From: prevEnv, To: e.Name, Tag: prev.Tag, Digest: prev.Digest}
			out = append(out, g)
			for _, c := range group {
				if c != nil {
					c.Gap = &g
				}
			}
		}
		if newest != nil {
			prev, prevEnv = newest, e.Name
		}
	}
	return out
}

// mayRun: c runs what p runs, or may (its digest is unknown, its tag the
// same).
func mayRun(c, p *matrixCell) bool {
	if c.Digest == "" {
		return c.Tag != "" && c.Tag == p.Tag
	}
	return c.Digest == p.Digest
}

// newerThan: the image pushed later, or when neither push is known the
// one that arrived later.
func newerThan(a, b *matrixCell) bool {
	if a.pushedAt != b.pushedAt {
		return a.pushedAt > b.pushedAt
	}
	return a.updatedAt > b.updatedAt
}

// matrixEnvs are the columns the user may view, in the configuration's
// order, with each environment's configured clusters.
func (s *server) matrixEnvs(c echo.Context, only string) []matrixEnv {
	var out []matrixEnv
	for _, name := range s.visibleEnvs(c) {
		if only != "" && name != only {
			continue
		}
		e := matrixEnv{Name: name, Clusters: []string{}}
		for _, cl := range s.cfg.Clusters {
			if cl.Environment == name {
				e.Clusters = append(e.Clusters, cl.Name)
			}
		}
		out = append(out, e)
	}
	return out
}

// matrix reads the inventory and the compliance record for the request.
func (s *server) matrix(c echo.Context) (matrixView, error) {
	q := matrixQuery{Env: c.QueryParam("env"), Repository: strings.TrimSpace(c.QueryParam("repository"))}
	f := inventory.Filter{Repository: q.Repository}
	if err := f.Compile(); err != nil {
		return matrixView{}, echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	live := s.liveRegionOf(c, q.Env)
	recs, err := s.records(c)
	if err != nil {
		return matrixView{}, err
	}
	recs = f.Apply(recs)
	violations, problem := s.violations(c.Request().Context())
	v := buildMatrix(s.matrixEnvs(c, q.Env), recs, violations)
	v.Filter, v.Choices, v.Problem, v.Live = q, s.visibleEnvs(c), problem, live
	for _, g := range v.Groups {
		for _, row := range g.Rows {
			for _, cell := range row.Cells {
				if cell != nil {
					cell.Actions = s.workloadActions(c, cell.Cluster, cell.AppID, true)
				}
			}
		}
	}
	return v, nil
}

// violations are the compliance rules broken now; a record that cannot be
// read leaves the matrix without its flags, and says so.
func (s *server) violations(parent context.Context) ([]compliance.Violation, string) {
	if s.deps.JS == nil {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(parent, readTimeout)
	defer cancel()
	st, err := compliance.Bind(ctx, s.deps.JS)
	if errors.Is(err, compliance.ErrNoBucket) {
		return nil, ""
	}
	var vs []compliance.Violation
	if err == nil {
		vs, err = st.List(ctx)
	}
	if err != nil {
		s.log.Warn("console: reading the compliance record failed", "err", err)
		return nil, fmt.Sprintf("compliance flags unavailable: %v", cmp.Or(ctx.Err(), err))
	}
	return vs, ""
}

// matrixPage is GET /: the release matrix; with ?fragment=live only its
// table, which the page's script swaps in as deployments happen.
func (s *server) matrixPage(c echo.Context) error {
	v, err := s.matrix(c)
	if err != nil {
		return err
	}
	return s.renderView(c, "matrix", v)
}

// matrixAPI is GET /api/matrix: the same as JSON.
func (s *server) matrixAPI(c echo.Context) error {
	v, err := s.matrix(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
