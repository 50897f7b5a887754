package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Git is a Source that follows a branch, tag or commit of a remote Git
// repository.
type Git struct {
	cfg Config
	// url is what go-git is given: an http(s) URL loses its userinfo,
	// which becomes urlAuth.
	url      string
	display  string
	endpoint *transport.Endpoint
	urlAuth  *Auth
	kind     string // "branch", "tag" or "commit"
	name     string // branch or tag name, or commit hash
	path     string
	cacheDir string
	log      *slog.Logger
	t        *tracker

	// remoteHash is what the ref pointed at when the latest snapshot was
	// made; guarded by t.syncing.
	remoteHash plumbing.Hash
	// maxPacks is the pack count beyond which the cache is started afresh.
	maxPacks int
	// pushed is the commit a webhook last said the followed branch was
	// pushed to, not yet served by a sync; nil when there is none.
	pushed atomic.Pointer[plumbing.Hash]
	// last is what the latest build read, for the next (git_tree.go);
	// guarded by t.syncing.
	last *lastBuild
	// repo is the cache, kept open between the syncs of a Run (keepOpen):
	// opening it reads every pack's index again, 8 ms a sync. Both are
	// guarded by t.syncing.
	repo     *git.Repository
	keepOpen bool
	// packs reads large trees of the open cache's packs (packread.go);
	// nil unless the cache is kept open. Guarded by t.syncing.
	packs *packReader
	// objects is the open cache's object cache (cacheStorage), emptied
	// after each sync. Guarded by t.syncing.
	objects *cache.ObjectLRU
}

var _ Source = (*Git)(nil)

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// defaultMaxPacks bounds the pack files a cache gathers (one per fetch)
// before it is replaced by a fresh shallow clone: go-git does not repack,
// and every object lookup scans each pack's index.
const defaultMaxPacks = 50

// NewGit returns a Source for the Git repository at cfg.Repo. It checks the
// configuration and does no I/O.
func NewGit(cfg Config) (*Git, error) {
	cfg = cfg.withDefaults()
	g := &Git{cfg: cfg, display: RedactURL(cfg.Repo), urlAuth: &Auth{}, maxPacks: defaultMaxPacks}
	g.log = cfg.Logger.With("repo", g.display)
	var err error
	if g.path, err = cleanPath(cfg.Path); err != nil {
		return nil, err
	}
	switch {
	case cfg.Commit != "" && cfg.Tag != "":
		return nil, errors.New("give a tag or a commit, not both")
	case cfg.Commit != "":
		g.kind, g.name = "commit", strings.ToLower(cfg.Commit)
		if !commitHash.MatchString(g.name) {
			return nil, fmt.Errorf("commit %q is not a full 40-digit commit hash", cfg.Commit)
		}
	case cfg.Tag != "":
		g.kind, g.name = "tag", cfg.Tag
	default:
		g.kind, g.name = "branch", cfg.Branch
		if g.name == "" {
			g.name = DefaultBranch
		}
	}
	if g.kind != "commit" && !validRefName(g.name) {
		return nil, fmt.Errorf("%s name %q is not a valid Git ref name", g.kind, g.name)
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("no cache directory given for the Git repository")
	}
	g.url = cfg.Repo
	if u, err := url.Parse(cfg.Repo); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.User != nil {
		g.urlAuth.Username = u.User.Username()
		g.urlAuth.Password, _ = u.User.Password()
		if g.urlAuth.Password == "" {
			// https://<token>@host: the token is the user name.
			g.urlAuth.Token = g.urlAuth.Username
		}
		u.User = nil
		g.url = u.String()
	}
	if g.endpoint, err = transport.NewEndpoint(g.url); err != nil {
		return nil, fmt.Errorf("parse repository URL %s: %w", g.display, redactor(g.urlAuth.secrets()).error(err))
	}
	switch g.endpoint.Protocol {
	case "http", "https", "ssh", "git", "file":
	default:
		return nil, fmt.Errorf("repository URL %s: unsupported protocol %q (want https, http, ssh, git or file)", g.display, g.endpoint.Protocol)
	}
	sum := sha256.Sum256([]byte(g.url))
	g.cacheDir = filepath.Join(cfg.CacheDir, "git-"+hex.EncodeToString(sum[:8]))
	ref := g.kind + " " + g.name
	g.t = newTracker(Status{Source: g.display, Ref: ref, Path: g.path})
	return g, nil
}

// validRefName applies git check-ref-format's rules to a branch or tag
// name, so a typo fails at start rather than at every sync.
func validRefName(n string) bool {
	if n == "" || n == "@" || strings.HasPrefix(n, "-") || strings.HasPrefix(n, "/") || strings.HasSuffix(n, "/") ||
		strings.HasSuffix(n, ".") || strings.HasSuffix(n, ".lock") || strings.Contains(n, "..") ||
		strings.Contains(n, "@{") || strings.Contains(n, "//") || strings.ContainsAny(n, " ~^:?*[\\\x7f") {
		return false
	}
	for _, r := range n {
		if r < 0x20 {
			return false
		}
	}
	for _, part := range strings.Split(n, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}

// Snapshot returns the latest snapshot, syncing first if there is none.
func (g *Git) Snapshot(ctx context.Context) (*Snapshot, error) {
	return g.t.syncOnce(ctx, g.sync)
}

// Changes receives a value when a snapshot with a new revision is ready.
func (g *Git) Changes() <-chan struct{} { return g.t.changes }

// Trigger makes Run sync now.
func (g *Git) Trigger() { g.t.doTrigger() }

// TriggerPush is Trigger for a push a webhook reports: ref (a full ref
// name, refs/heads/<branch>) now points at head (a 40-digit commit hash).
// When ref is the branch followed, the sync skips listing the remote's
// refs and fetches the branch at once: the fetch lists them anyway, and
// ls-remote cost a round trip and a second upload-pack on the server. What
// the branch points at after that fetch is what is synced, whatever head
// says: a delivery may arrive late, out of order or replayed, and the
// cache may already hold an older head. Any other push is a plain
// Trigger. It never blocks.
func (g *Git) TriggerPush(ref, head string) {
	if g.kind == "branch" && plumbing.ReferenceName(ref) == g.refName() && commitHash.MatchString(head) {
		h := plumbing.NewHash(head)
		if !h.IsZero() { // an all-zero head: the branch was deleted
			g.pushed.Store(&h)
		}
	}
	g.t.doTrigger()
}

// Status reports the state of the source.
func (g *Git) Status() Status { return g.t.getStatus() }

// Run syncs at once, then every PollInterval and on Trigger, until ctx is
// cancelled.
func (g *Git) Run(ctx context.Context) error {
	if err := g.t.startRun(); err != nil {
		return err
	}
	defer g.t.stopRun()
	defer g.releaseCache()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-g.t.trigger:
		}
		if g.t.lockSync(ctx) != nil {
			return nil
		}
		g.keepOpen = true
		// This sync serves any trigger already waiting; one that arrives
		// during it is served by another.
		select {
		case <-g.t.trigger:
		default:
		}
		_ = g.sync(ctx)
		g.t.unlockSync()
		timer.Reset(g.t.nextDelay(g.cfg))
	}
}

// credentials holds what one sync authenticates with.
type credentials struct {
	method transport.AuthMethod
	ca     []byte
	red    redactor
}

// credentials reads the auth dir, so a rotated secret takes effect at the
// next sync.
func (g *Git) credentials() (credentials, error) {
	red := redactor(g.urlAuth.secrets())
	if g.urlAuth.Token != "" {
		red = append(red, g.urlAuth.Token)
	}
	a, err := ReadAuthDir(g.cfg.AuthDir)
	if err != nil {
		return credentials{red: red}, err
	}
	red = append(red, a.secrets()...)
	if g.urlAuth.Username != "" && a.Password == "" && a.Token == "" && a.BearerToken == "" {
		// The URL's userinfo, unless the auth dir has credentials.
		a.Username, a.Password, a.Token = g.urlAuth.Username, g.urlAuth.Password, g.urlAuth.Token
	}
	m, err := a.method(g.url, g.cfg.Timeout)
	return credentials{method: m, ca: a.CABundle, red: red}, err
}

// sync brings the latest snapshot up to date with the remote and records
// the outcome in the status. The caller holds t.syncing.
func (g *Git) sync(ctx context.Context) error {
	start := time.Now()
	err := g.syncLocked(ctx)
	if err != nil && ctx.Err() != nil {
		// Shutting down is not a failure of the remote.
		return err
	}
	g.t.finish(err, time.Now())
	if g.cfg.OnSync != nil {
		g.cfg.OnSync(time.Since(start), err)
	}
	if err != nil {
		g.log.Warn("sync failed", "err", err.Error())
	}
	return err
}

func (g *Git) syncLocked(ctx context.Context) error {
	cred, err := g.credentials()
	if err != nil {
		return cred.red.error(fmt.Errorf("sync %s: credentials: %w", g.display, err))
	}
	want := plumbing.NewHash(g.name)
	pushed := g.pushed.Swap(nil)
	switch {
	case g.kind == "commit":
		if g.t.snapshot() != nil {
			return nil // a pinned commit never changes
		}
	case pushed != nil && g.t.snapshot() != nil:
		// A webhook named the new head: fetch the branch without asking
		// first where it points (TriggerPush).
		return g.syncPushed(ctx, cred, *pushed)
	default:
		want, err = g.lsRemote(ctx, cred)
		if err != nil {
			return cred.red.error(err)
		}
		if g.t.snapshot() != nil && want == g.remoteHash {
			g.log.Debug("remote unchanged", "ref", g.kind+" "+g.name, "hash", want.String())
			return nil
		}
	}
	snap, remoteHash, err := g.materialize(ctx, cred, want, false)
	if err != nil {
		return cred.red.error(err)
	}
	g.remoteHash = remoteHash
	if g.t.publish(snap, time.Now()) {
		g.log.Info("new revision", "revision", snap.Revision, "files", len(snap.Files))
	}
	return nil
}

// syncPushed fetches the branch after a push a webhook reported and
// publishes what it points at then, which need not be pushed.
func (g *Git) syncPushed(ctx context.Context, cred credentials, pushed plumbing.Hash) error {
	snap, remoteHash, err := g.materialize(ctx, cred, pushed, true)
	if err != nil {
		return cred.red.error(err)
	}
	if remoteHash != pushed {
		g.log.Debug("the branch is not where the webhook said", "branch", g.name, "webhook", pushed.String(), "fetched", remoteHash.String())
	}
	g.remoteHash = remoteHash
	if g.t.publish(snap, time.Now()) {
		g.log.Info("new revision", "revision", snap.Revision, "files", len(snap.Files))
	}
	return nil
}

// lsRemote asks the remote where the ref points.
func (g *Git) lsRemote(ctx context.Context, cred credentials) (plumbing.Hash, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	g.t.update(func(st *Status) { st.Checks++ })
	fail := func(err error) (plumbing.Hash, error) {
		return plumbing.ZeroHash, fmt.Errorf("ls-remote %s: %w", g.display, describeTransportError(err))
	}
	if err := g.dialCheck(ctx); err != nil {
		return fail(err)
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{g.url}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: cred.method, CABundle: cred.ca, PeelingOption: git.IgnorePeeled})
	if err != nil {
		return fail(err)
	}
	want := g.refName()
	for _, r := range refs {
		if r.Name() == want && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("ls-remote %s: %s %q not found", g.display, g.kind, g.name)
}

// refName is the remote ref followed.
func (g *Git) refName() plumbing.ReferenceName {
	if g.kind == "tag" {
		return plumbing.NewTagReferenceName(g.name)
	}
	return plumbing.NewBranchReferenceName(g.name)
}

// localRefName is where a fetch stores the ref in the cache.
func (g *Git) localRefName() plumbing.ReferenceName {
	switch g.kind {
	case "tag":
		return plumbing.NewTagReferenceName(g.name)
	case "commit":
		return "refs/tinkops/pinned"
	}
	return plumbing.NewRemoteReferenceName("origin", g.name)
}

// dialCheck connects to a git:// server under ctx's deadline: go-git's
// git:// transport dials without one, so an unreachable host would hold a
// sync for the operating system's connect timeout.
func (g *Git) dialCheck(ctx context.Context) error {
	if g.endpoint.Protocol != "git" {
		return nil
	}
	port := g.endpoint.Port
	if port <= 0 {
		port = 9418
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(g.endpoint.Host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return c.Close()
}

// describeTransportError adds what the operator can do to go-git's terse
// transport errors.
func describeTransportError(err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("%w (check the credentials in the auth dir)", err)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w (the credentials were refused)", err)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%w (push a first commit)", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within the timeout: %w", err)
	}
	return err
}

// materialize makes the snapshot of want (a commit, or an annotated tag),
// fetching what the cache lacks; with mustFetch it fetches the ref even
// when the cache holds want, and makes the snapshot of wherever the ref
// points then. When the cache fails in a way a fresh cache might not, it
// is deleted and the work done once more.
func (g *Git) materialize(ctx context.Context, cred credentials, want plumbing.Hash, mustFetch bool) (*Snapshot, plumbing.Hash, error) {
	reset := false
	for {
		repo, fresh, err := g.cache(reset)
		if err != nil {
			return nil, plumbing.ZeroHash, err
		}
		snap, got, err := g.materializeIn(ctx, repo, cred, want, mustFetch)
		// The decoded objects served the delta bases of this read; the
		// snapshot holds what they held, and until the next sync they
		// would only keep up to objectCacheSize of blobs (16 MB of heap
		// at 10,000 machines, go-git's objects around them included).
		g.objects.Clear()
		if err != nil || !g.keepOpen {
			g.closeCache()
		}
		if err == nil || fresh || !cacheError(ctx, err) {
			return snap, got, err
		}
		g.log.Warn("starting the repository cache afresh", "err", cred.red.text(err.Error()))
		reset = true
	}
}

// cacheError reports whether err may be the cache's fault rather than the
// network's or the remote's.
func cacheError(ctx context.Context, err error) bool {
	var netErr net.Error
	switch {
	case ctx.Err() != nil, errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrEmptyRemoteRepository),
		errors.Is(err, errTooLarge), errors.Is(err, errPathNotFound):
		return false
	}
	return true
}

var (
	errTooLarge     = errors.New("repository too large")
	errPathNotFound = errors.New("path not found")
)

func (g *Git) materializeIn(ctx context.Context, repo *git.Repository, cred credentials, want plumbing.Hash, mustFetch bool) (*Snapshot, plumbing.Hash, error) {
	if _, err := repo.Storer.EncodedObject(plumbing.AnyObject, want); err == nil && !mustFetch {
		return g.snapshotOf(repo, want)
	}
	// Incremental first when the cache holds the commit fetched last: go-git
	// then sends that commit as a "have" and the server sends only what
	// changed since (one blob and its trees for a one-file commit), where a
	// depth-1 fetch sends the whole tree again. The server takes the have
	// to mean its whole history, which a shallow cache does not hold: when
	// the new commit needs an object from beyond the cache's horizon (a
	// branch moved back, a file reverted to an old version), it is missing,
	// and a depth-1 fetch of the same commit completes the cache.
	incremental := g.kind != "commit" && g.holdsLocalRef(repo)
	for {
		if err := g.fetch(ctx, repo, cred, want, incremental); err != nil {
			return nil, plumbing.ZeroHash, err
		}
		got := want
		if g.kind != "commit" {
			// The ref may have moved on since ls-remote; follow it.
			ref, err := repo.Storer.Reference(g.localRefName())
			if err != nil {
				return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s %s %s: %w", g.display, g.kind, g.name, err)
			}
			got = ref.Hash()
			if cur := g.t.snapshot(); cur != nil && got == g.remoteHash {
				return cur, got, nil // the ref has not moved after all
			}
		}
		snap, got, err := g.snapshotOf(repo, got)
		if incremental && errors.Is(err, plumbing.ErrObjectNotFound) {
			g.log.Debug("incremental fetch left objects out; fetching the commit at depth 1", "revision", got)
			incremental = false
			continue
		}
		return snap, got, err
	}
}

// snapshotOf builds the snapshot of a commit (or an annotated tag) the
// cache holds.
func (g *Git) snapshotOf(repo *git.Repository, got plumbing.Hash) (*Snapshot, plumbing.Hash, error) {
	commit, err := peelToCommit(repo.Storer, got)
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("read %s %s at %s: %w", g.kind, g.name, got, err)
	}
	snap, err := g.build(repo.Storer, commit)
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("read commit %s of %s: %w", commit.Hash, g.display, err)
	}
	return snap, got, nil
}

// fetch fetches the ref (or the pinned commit) into the cache: at depth 1,
// or incrementally from the commit the cache holds.
func (g *Git) fetch(ctx context.Context, repo *git.Repository, cred credentials, want plumbing.Hash, incremental bool) error {
	var spec string
	switch g.kind {
	case "commit":
		spec = fmt.Sprintf("+%s:%s", g.name, g.localRefName())
	default:
		spec = fmt.Sprintf("+%s:%s", g.refName(), g.localRefName())
	}
	opts := &git.FetchOptions{
		RemoteName: "origin",
		RemoteURL:  g.url,
		RefSpecs:   []config.RefSpec{config.RefSpec(spec)},
		Depth:      1,
		Tags:       git.NoTags,
		Force:      true,
		Auth:       cred.method,
		CABundle:   cred.ca,
	}
	if incremental {
		// A force-push to unrelated history costs that history's download
		// once, within the fetch deadline.
		opts.Depth = 0
	}
	err := g.fetchOnce(ctx, repo, opts)
	if g.kind == "commit" && errors.Is(err, git.ErrExactSHA1NotSupported) {
		// The server serves only what refs point at: fetch every branch
		// in full and hope the commit is on one.
		g.log.Info("server does not serve commits by hash; fetching all branches", "commit", g.name)
		opts.RefSpecs = []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*"}
		opts.Depth = 0
		err = g.fetchOnce(ctx, repo, opts)
	}
	if err != nil {
		return fmt.Errorf("fetch %s %s %s: %w", g.display, g.kind, g.name, describeTransportError(err))
	}
	if _, err := repo.Storer.EncodedObject(plumbing.AnyObject, want); err != nil && g.kind == "commit" {
		return fmt.Errorf("fetch %s: commit %s is not on any branch: %w", g.display, g.name, err)
	}
	return nil
}

// holdsLocalRef reports whether the cache holds the commit its local ref
// names: the starting point of an incremental fetch.
func (g *Git) holdsLocalRef(repo *git.Repository) bool {
	ref, err := repo.Storer.Reference(g.localRefName())
	if err != nil {
		return false
	}
	_, err = peelToCommit(repo.Storer, ref.Hash())
	return err == nil
}

func (g *Git) fetchOnce(ctx context.Context, repo *git.Repository, opts *git.FetchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	g.t.update(func(st *Status) { st.Fetches++ })
	if err := g.dialCheck(ctx); err != nil {
		return err
	}
	err := repo.FetchContext(ctx, opts)
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err == nil {
		g.t.update(func(st *Status) { st.LastFetch = time.Now() })
	}
	return err
}

// cache returns the open cache, opening it (see openCache) unless it is
// open already and reset is not asked for.
func (g *Git) cache(reset bool) (repo *git.Repository, fresh bool, err error) {
	if g.repo != nil && !reset && countPacks(g.cacheDir) <= g.maxPacks {
		return g.repo, false, nil
	}
	g.closeCache()
	repo, fresh, err = g.openCache(reset)
	if err != nil {
		return nil, false, err
	}
	g.repo = repo
	if g.keepOpen {
		g.packs = newPackReader(g.cacheDir)
	}
	return repo, fresh, nil
}

// closeCache closes the cache if it is open. The caller holds t.syncing.
func (g *Git) closeCache() {
	if g.repo != nil {
		closeStorer(g.repo)
		g.repo = nil
	}
	if g.packs != nil {
		g.packs.close()
		g.packs = nil
	}
}

// releaseCache closes the cache as Run returns, once any sync a Snapshot
// call runs has ended.
func (g *Git) releaseCache() {
	if g.t.lockSync(context.Background()) == nil {
		g.keepOpen = false
		g.closeCache()
		g.t.unlockSync()
	}
}

// openCache opens the bare repository that caches fetched objects,
// creating it, or replacing it when reset is set or it is unusable. fresh
// reports a cache created by this call.
func (g *Git) openCache(reset bool) (repo *git.Repository, fresh bool, err error) {
	if !reset {
		repo, err = git.Open(g.newStorage(), nil)
		if err == nil && countPacks(g.cacheDir) > g.maxPacks {
			g.log.Info("starting the repository cache afresh: too many pack files", "dir", g.cacheDir)
			closeStorer(repo)
			err = errors.New("too many packs")
		}
		if err != nil && !errors.Is(err, git.ErrRepositoryNotExists) && !errors.Is(err, os.ErrNotExist) {
			reset = true
		}
	}
	if reset || err != nil {
		if err := os.RemoveAll(g.cacheDir); err != nil {
			return nil, false, fmt.Errorf("reset repository cache: %w", err)
		}
		if err := os.MkdirAll(g.cacheDir, 0o700); err != nil {
			return nil, false, fmt.Errorf("create repository cache: %w", err)
		}
		repo, err = git.Init(g.newStorage(), nil)
		if err == nil {
			_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{g.url}})
		}
		if err != nil {
			return nil, false, fmt.Errorf("create repository cache in %s: %w", g.cacheDir, err)
		}
		fresh = true
	}
	return repo, fresh, nil
}

// cacheStorage is the object store of the cache at dir, with objects as its
// object cache. It keeps each pack
// file open until closeStorer: go-git otherwise opens (and lstats its way
// to) the pack again for every object read, which cost a full sync 0.6 s of
// CPU and 150 MB of garbage reading 20,000 blobs. Its object cache is
// small: the store stays open between syncs, and go-git's default (96 MiB)
// would keep that much of the last snapshot's blobs, which the snapshot
// holds already; a few MiB of recent objects (objects, sized
// objectCacheSize) serve the delta bases.
func cacheStorage(dir string, objects cache.Object) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(dir), objects, filesystem.Options{KeepDescriptors: true})
}

// newStorage is the cache's object store with a new object cache, which
// g.objects names so that materialize can empty it.
func (g *Git) newStorage() *filesystem.Storage {
	g.objects = cache.NewObjectLRU(objectCacheSize)
	return cacheStorage(g.cacheDir, g.objects)
}

// objectCacheSize bounds the decoded objects the cache keeps in memory.
const objectCacheSize = 8 * cache.MiByte

func closeStorer(repo *git.Repository) {
	if c, ok := repo.Storer.(io.Closer); ok {
		_ = c.Close()
	}
}

func countPacks(dir string) int {
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	return len(packs)
}
