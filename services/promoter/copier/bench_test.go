package copier

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

const mib = 1 << 20

// BenchmarkCopyVsCrane copies an image of 8 layers × 64 MiB from one
// registry to a fresh one with Copier.Copy and, in the same iteration, to
// another fresh one with crane.Copy (both 4 jobs, both in this process,
// the order alternating between iterations). Registries store on disk so
// that their blobs do not count as heap.
func BenchmarkCopyVsCrane(b *testing.B) {
	src := testkit.NewRegistry(b, testkit.RegistryOptions{RootDirectory: b.TempDir()})
	img := seededImage(b, 1, 8, 64*mib)
	d := pushBench(b, src.Host+"/apps/big:1.0.0", img)
	b.SetBytes(8 * 64 * mib)

	c := New(Options{Jobs: 4})
	var copierTime, craneTime time.Duration
	var copierMem, craneMem memPeak
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		dirA, dirB := b.TempDir(), b.TempDir()
		dstA := testkit.NewRegistry(b, testkit.RegistryOptions{RootDirectory: dirA})
		dstB := testkit.NewRegistry(b, testkit.RegistryOptions{RootDirectory: dirB})
		b.StartTimer()

		runCopier := func() {
			s := startSampler()
			start := time.Now()
			res, err := c.Copy(b.Context(), Request{
				From:          Ref{Registry: src.Host, Repository: "apps/big", Digest: d},
				To:            Ref{Registry: dstA.Host, Repository: "apps/big", Tag: "1.0.0"},
				CopyReferrers: true,
			})
			copierTime += time.Since(start)
			copierMem = copierMem.max(s.stop())
			if err != nil {
				b.Fatal(err)
			}
			if res.BlobsCopied != 9 || res.BytesCopied < 8*64*mib {
				b.Fatalf("copier: %+v", res)
			}
		}
		runCrane := func() {
			s := startSampler()
			start := time.Now()
			err := crane.Copy(src.Host+"/apps/big@"+d, dstB.Host+"/apps/big:1.0.0", crane.WithContext(b.Context()), crane.WithJobs(4))
			craneTime += time.Since(start)
			craneMem = craneMem.max(s.stop())
			if err != nil {
				b.Fatal(err)
			}
		}
		if i%2 == 0 {
			runCopier()
			runCrane()
		} else {
			runCrane()
			runCopier()
		}

		b.StopTimer()
		_ = os.RemoveAll(dirA)
		_ = os.RemoveAll(dirB)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(copierTime.Seconds()/n, "copier-s")
	b.ReportMetric(craneTime.Seconds()/n, "crane-s")
	b.ReportMetric(copierTime.Seconds()/craneTime.Seconds(), "copier/crane")
	copierMem.report(b, "copier")
	craneMem.report(b, "crane")
}

// BenchmarkRepromote copies an image that the target already has (tag at
// the digest), with and without looking for referrers.
func BenchmarkRepromote(b *testing.B) {
	for _, refs := range []bool{false, true} {
		b.Run("referrers="+strconv.FormatBool(refs), func(b *testing.B) {
			src := testkit.NewRegistry(b, testkit.RegistryOptions{})
			dst := testkit.NewRegistry(b, testkit.RegistryOptions{})
			img, err := random.Image(mib, 4)
			if err != nil {
				b.Fatal(err)
			}
			testkit.PushImage(b, src.Host+"/apps/web:1.0.0", img)
			h, err := img.Digest()
			if err != nil {
				b.Fatal(err)
			}
			c := New(Options{})
			req := Request{
				From:          Ref{Registry: src.Host, Repository: "apps/web", Digest: h.String()},
				To:            Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
				CopyReferrers: refs,
			}
			if _, err := c.Copy(b.Context(), req); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				res, err := c.Copy(b.Context(), req)
				if err != nil {
					b.Fatal(err)
				}
				if !res.AlreadyThere {
					b.Fatalf("result %+v, want AlreadyThere", res)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/copy")
		})
	}
}

// BenchmarkLargeLayer copies one 1 GiB layer and samples the process's
// memory meanwhile: a streaming copy needs the same few buffers whatever the
// layer size.
func BenchmarkLargeLayer(b *testing.B) {
	const size = 1 << 30
	src := testkit.NewRegistry(b, testkit.RegistryOptions{RootDirectory: b.TempDir()})
	img := seededImage(b, 2, 1, size)
	d := pushBench(b, src.Host+"/apps/huge:1.0.0", img)
	b.SetBytes(size)

	c := New(Options{})
	var mem memPeak
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		dst := testkit.NewRegistry(b, testkit.RegistryOptions{RootDirectory: dir})
		b.StartTimer()

		s := startSampler()
		res, err := c.Copy(b.Context(), Request{
			From: Ref{Registry: src.Host, Repository: "apps/huge", Digest: d},
			To:   Ref{Registry: dst.Host, Repository: "apps/huge", Tag: "1.0.0"},
		})
		mem = mem.max(s.stop())
		if err != nil {
			b.Fatal(err)
		}
		if res.BytesCopied < size {
			b.Fatalf("result %+v", res)
		}

		b.StopTimer()
		_ = os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "copier-s")
	mem.report(b, "copier")
}

// pushBench pushes img to ref and returns its digest.
func pushBench(b *testing.B, ref string, img v1.Image) string {
	b.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(r, img, testkit.RemoteOptions(b)...); err != nil {
		b.Fatalf("push %s: %v", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		b.Fatal(err)
	}
	return h.String()
}

// seededImage is an OCI image of n layers of size bytes each, generated by
// a seeded PRNG whenever read, so that GiBs of layers never sit in memory.
func seededImage(b *testing.B, seed uint64, n int, size int64) v1.Image {
	b.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	var layers []v1.Layer
	for i := range n {
		l, err := newSeededLayer(seed<<32|uint64(i), size)
		if err != nil {
			b.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		b.Fatal(err)
	}
	return img
}

// seededLayer is a layer whose bytes come from ChaCha8 with a fixed seed.
// Registries do not look inside layers, so it is labelled an uncompressed
// OCI layer without being a tar.
type seededLayer struct {
	seed   [32]byte
	size   int64
	digest v1.Hash
}

func newSeededLayer(seed uint64, size int64) (*seededLayer, error) {
	l := &seededLayer{size: size}
	binary.LittleEndian.PutUint64(l.seed[:], seed)
	h := sha256.New()
	rc, _ := l.Uncompressed()
	if _, err := io.Copy(h, rc); err != nil {
		return nil, err
	}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	return l, nil
}

func (l *seededLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *seededLayer) DiffID() (v1.Hash, error) { return l.digest, nil }
func (l *seededLayer) Size() (int64, error)     { return l.size, nil }
func (l *seededLayer) MediaType() (types.MediaType, error) {
	return types.OCIUncompressedLayer, nil
}
func (l *seededLayer) Compressed() (io.ReadCloser, error) { return l.Uncompressed() }
func (l *seededLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(rand.NewChaCha8(l.seed), l.size)), nil
}

// memPeak is the high-water mark of the process's memory during an
// operation, above what it used when the operation started.
type memPeak struct {
	heapInuse, sys, rss uint64
}

func (m memPeak) max(o memPeak) memPeak {
	return memPeak{heapInuse: max(m.heapInuse, o.heapInuse), sys: max(m.sys, o.sys), rss: max(m.rss, o.rss)}
}

func (m memPeak) report(b *testing.B, who string) {
	b.ReportMetric(float64(m.heapInuse)/mib, who+"-peak-heapinuse-MiB")
	b.ReportMetric(float64(m.sys)/mib, who+"-peak-sys-delta-MiB")
	if m.rss > 0 {
		b.ReportMetric(float64(m.rss)/mib, who+"-peak-rss-delta-MiB")
	}
}

// sampler polls memory every few milliseconds: the copy and the registries
// run in this process, so only a high-water mark taken while they run says
// what the copy needed. HeapInuse is absolute (after a GC at the start, it
// is close to what is live); Sys and RSS are deltas from the start.
type sampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	base memPeak
	peak memPeak
}

func startSampler() *sampler {
	runtime.GC()
	s := &sampler{done: make(chan struct{})}
	s.base = readMem()
	s.peak = s.base
	s.wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
				s.peak = s.peak.max(readMem())
			}
		}
	})
	return s
}

func (s *sampler) stop() memPeak {
	close(s.done)
	s.wg.Wait()
	s.peak = s.peak.max(readMem())
	return memPeak{
		heapInuse: s.peak.heapInuse,
		sys:       s.peak.sys - s.base.sys,
		rss:       sub(s.peak.rss, s.base.rss),
	}
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func readMem() memPeak {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memPeak{heapInuse: ms.HeapInuse, sys: ms.Sys, rss: rss()}
}

// rss is the resident set size from /proc/self/statm (0 where there is none).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
