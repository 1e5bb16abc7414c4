package console

import (
	"context"
	"encoding/csv"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// readTimeout bounds a view's reads of the buckets.
const readTimeout = 10 * time.Second

// records are the inventory's records of the environments the request's
// user may view, read anew for the request: the views show the bucket as
// it is, and a listing of 15,000 records costs tens of milliseconds (see
// BenchmarkMatrix5000x3), too little to risk a stale cache for. Before
// any deployer has written one there is no bucket: nothing is recorded.
func (s *server) records(c echo.Context) ([]inventory.Record, error) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readTimeout)
	defer cancel()
	all, err := s.listInventory(ctx)
	if err != nil {
		return nil, err
	}
	visible := s.policy.Filter(s.user(c).Identity)
	return slices.DeleteFunc(all, func(r inventory.Record) bool { return !visible(r.Environment) }), nil
}

func (s *server) listInventory(ctx context.Context) ([]inventory.Record, error) {
	if s.deps.JS == nil {
		return nil, nil
	}
	return inventory.ListAll(ctx, s.deps.JS)
}

// inventoryView is the inventory search: the filter as asked, and what
// passes it.
type inventoryView struct {
	Filter  inventoryQuery     `json:"filter"`
	Records []inventory.Record `json:"records"`
	// Recorded is how many records the user may view before filtering.
	Recorded int `json:"recorded"`
	// Envs and Clusters are the filter's choices.
	Envs     []string `json:"-"`
	Clusters []string `json:"-"`
	CSVHref  string   `json:"-"`
}

// inventoryQuery is the search as the query string gives it.
type inventoryQuery struct {
	Image   string `json:"image,omitempty" query:"image"`
	Digest  string `json:"digest,omitempty" query:"digest"`
	Node    string `json:"node,omitempty" query:"node"`
	Env     string `json:"env,omitempty" query:"env"`
	Cluster string `json:"cluster,omitempty" query:"cluster"`
}

func (q inventoryQuery) filter() inventory.Filter {
	return inventory.Filter{
		Image: strings.TrimSpace(q.Image), Digest: strings.TrimSpace(q.Digest), Node: strings.TrimSpace(q.Node),
		Env: q.Env, Cluster: q.Cluster,
	}
}

func (s *server) inventoryView(c echo.Context) (inventoryView, error) {
	q := inventoryQuery{
		Image: c.QueryParam("image"), Digest: c.QueryParam("digest"), Node: c.QueryParam("node"),
		Env: c.QueryParam("env"), Cluster: c.QueryParam("cluster"),
	}
	recs, err := s.records(c)
	if err != nil {
		return inventoryView{}, err
	}
	f := q.filter()
	if err := f.Compile(); err != nil {
		return inventoryView{}, echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	v := inventoryView{Filter: q, Records: f.Apply(recs), Recorded: len(recs)}
	if v.Records == nil {
		v.Records = []inventory.Record{}
	}
	v.Envs = s.visibleEnvs(c)
	for _, r := range recs {
		if !slices.Contains(v.Clusters, r.Cluster) {
			v.Clusters = append(v.Clusters, r.Cluster)
		}
	}
	slices.Sort(v.Clusters)
	qs := maps.Clone(c.QueryParams()) // echo keeps the request's; not to be changed
	qs.Set("format", "csv")
	v.CSVHref = "/inventory?" + qs.Encode()
	return v, nil
}

// inventoryPage is GET /inventory: the search as a table, or ?format=csv.
func (s *server) inventoryPage(c echo.Context) error {
	v, err := s.inventoryView(c)
	if err != nil {
		return err
	}
	switch c.QueryParam("format") {
	case "", "html":
	case "csv":
		return writeInventoryCSV(c, v.Records)
	case "json":
		return c.JSON(http.StatusOK, v)
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "format: html, csv or json")
	}
	return s.render(c, http.StatusOK, "inventory", v)
}

// inventoryAPI is GET /api/inventory: the search as JSON.
func (s *server) inventoryAPI(c echo.Context) error {
	v, err := s.inventoryView(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// inventoryCSVHeader names the export's columns, one row per workload;
// nodes are joined with ';'.
var inventoryCSVHeader = []string{
	"environment", "cluster", "platform", "appId", "managed", "policy", "image", "repository", "tag", "digest",
	"wanted", "running", "healthy", "nodes", "updatedAt", "drift", "driftDigest", "leftManagement",
	"lastDeploymentImage", "lastDeploymentOutcome", "lastDeploymentAt", "refusedImage", "refusedBy",
}

func writeInventoryCSV(c echo.Context, records []inventory.Record) error {
	rows := make([][]string, 0, len(records))
	for _, r := range records {
		d := r.LastDeployment
		if d == nil {
			d = &inventory.Deployment{}
		}
		ref := r.Refused
		if ref == nil {
			ref = &inventory.Refusal{}
		}
		rows = append(rows, []string{
			r.Environment, r.Cluster, r.Platform, r.AppID, strconv.FormatBool(r.Managed), r.Policy, r.Image,
			r.Repository, r.Tag, r.Digest, strconv.Itoa(r.Wanted), strconv.Itoa(r.Running), strconv.Itoa(r.Healthy),
			strings.Join(r.Nodes, ";"), stamp(r.UpdatedAt), r.Drift, r.DriftDigest, r.LeftManagement,
			d.ToImage, d.Outcome, stamp(d.At), ref.Image, ref.Actor,
		})
	}
	return writeCSV(c, "slipway-inventory.csv", inventoryCSVHeader, rows)
}

// writeCSV sends rows under header as a CSV download named filename, each
// cell made safe for spreadsheets (csvSafe): the inventory's and the
// audit's exports.
func writeCSV(c echo.Context, filename string, header []string, rows [][]string) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+filename+`"`)
	h.Set("Cache-Control", "private, no-cache")
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	if err := w.Write(header); err != nil {
		return err
	}
	for _, row := range rows {
		for i := range row {
			row[i] = csvSafe(row[i])
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// csvSafe keeps a spreadsheet from taking a cell for a formula: one that
// starts with = + - @ (or a tab or carriage return, which some strip
// first) is written with a leading apostrophe.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// visibleEnvs are the environments the user may view: the configured ones
// in the file's order.
func (s *server) visibleEnvs(c echo.Context) []string {
	names := make([]string, 0, len(s.cfg.Environments))
	for _, e := range s.cfg.Environments {
		names = append(names, e.Name)
	}
	return s.policy.Environments(s.user(c).Identity, access.View, names)
}
