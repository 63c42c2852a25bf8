//! A kernel build (`make -jN`) as the page allocator sees it: the workload of
//! `cma_stress --seed-shape`, the seed's "kernel build (make -j16) on background".
//!
//! A compile job is a process, and what a process does to the page allocator over its life is
//! the same for every compiler run:
//!
//! 1. **exec**: the kernel stack (order [`KERNEL_STACK_ORDER`], `GFP_KERNEL`, unmovable, freed
//!    through `__free_pages_ok`, not the pcp), a few slab pages for the new `mm_struct`, VMAs,
//!    `files_struct`, credentials (`GFP_KERNEL`, unmovable) and a dentry/inode page for the
//!    files it creates (`GFP_KERNEL | __GFP_RECLAIMABLE`);
//! 2. **read the source** through the page cache: new, movable, reclaimable pages (a `.c`
//!    file is compiled once per build, so its pages are always new);
//! 3. **read the headers**: hundreds of headers per file, but the same ones for every job, so
//!    after the first jobs they are page-cache hits: no allocation, only a reference to pages
//!    the jobs share (here: a pin of a random page of the shared header set, [`Kbuild`]);
//! 4. **run**: fault in its anonymous memory one page at a time (`do_anonymous_page`:
//!    `GFP_HIGHUSER_MOVABLE`, order 0, movable, migratable by CMA), spread over its run time,
//!    with a page-table page (`pte_alloc_one`: `GFP_KERNEL`, unmovable) per 512 pages mapped,
//!    and work on it (a pin of a random page now and then: migration waits for it);
//! 5. **write the object file**: new page-cache pages (dirty in the kernel, written back
//!    later; clean here: the model has no writeback);
//! 6. **exit**: everything freed at once: the anonymous pages through `release_pages` →
//!    `free_hot_cold_page_list` → the freeing CPU's pcp (order 0, one by one, as
//!    `free_hot_cold_page_list` calls `free_hot_cold_page` per page: the library has no batched
//!    free and needs none), the page tables, the slab pages, the kernel stack.
//!
//! `make` itself is long-lived: its memory (the dependency graph of the whole tree) is
//! allocated once and held for the run. The jobs are `--threads` threads, each running one
//! compile job after another (`make -jN` keeps N jobs running), thread `i` on modelled CPU `i`
//! mod `--cpus`, so with 16 jobs on 4 CPUs each job gets a quarter of a CPU: a job's wall time
//! is its CPU time × jobs / CPUs. The build runs in real time in every shape: `--quick` only
//! makes the CMA allocations come faster, the build does not.
//!
//! # The parameters and where their values come from
//!
//! Every value is a property of a 2014 kernel build (3.17, x86-64 `defconfig`, gcc 4.x) on
//! the seed's VM, not of this model; none was chosen to make the drift bigger, and none was
//! changed after a measurement. Where no measurement could be found they are estimates, and
//! say so.
//!
//! | parameter | value | source |
//! | --- | --- | --- |
//! | jobs, CPUs | 16, 4 | the seed: "Virtual machine, 4 cpus", "make -j16" |
//! | [`KERNEL_STACK_ORDER`] | 2 (16 KiB) | x86-64 `THREAD_SIZE_ORDER` = 2 since 3.15 (commit 6538b8ea886e, "x86_64: expand kernel stack to 16K"), `alloc_thread_info_node` → `alloc_kmem_pages_node(.., THREADINFO_GFP, THREAD_SIZE_ORDER)` in 3.17 `kernel/fork.c` |
//! | [`PTES_PER_PAGE`] | 512 | x86-64: a page-table page maps 512 pages (`PTRS_PER_PTE`) |
//! | [`SLAB_PAGES_PER_EXEC`] | 2 unmovable + 1 reclaimable | estimate: the new process's `mm_struct`, VMAs, `files_struct`, `signal_struct`, credentials and the dentries/inodes of the files it creates come from slab caches; most objects fit in existing slab pages, so the net new slab pages per process is a few pages at most |
//! | [`CC1_CPU_MS`] | 200–1000 ms (mean 600) | estimate: a 3.17 x86-64 `defconfig` compiles about 2,000 C files, and such a build took 5–8 minutes on 4 CPUs of 2014: 4 × 400 s / 2,000 ≈ 0.8 s of CPU per file including `gcc`'s driver and `as`, of which `cc1` is most: 0.6 s |
//! | [`CC1_RSS_MIB`] | 8–40 MiB (mean 24) | estimate: `cc1`'s peak RSS on a kernel `.c` file at `-O2` without debug info; gcc's garbage collector grows its heap by `ggc-min-expand` (30 % + 70 % × RAM/1 GB, at most 100 %) between collections, so the peak depends on the machine's RAM; tens of MiB for a kernel file on a 1 GB machine |
//! | [`SOURCE_PAGES`] | 1–10 (mean 5.5) | estimate: 3.17 has about 18.9 million lines in some 47,000 files; a `.c` file of ~600 lines of ~30 bytes is ~18 KiB, 4–5 pages |
//! | [`OBJECT_PAGES`] | 2–14 (mean 8) | estimate: `vmlinux` of a `defconfig` is some 20 MB of text and data linked from ~2,000 objects (plus `built-in.o` archives written on top), ~10 KiB to 50 KiB an object |
//! | [`HEADER_MIB`] | 16 MiB | estimate: `include/` and `arch/x86/include` of 3.17 hold some 25–30 MB; a `defconfig` build reads most of them, once (then page-cache hits) |
//! | [`HEADER_PAGES_PER_JOB`] | 256 | estimate: a kernel file includes a few hundred headers (`.cmd` dependency lists of 3.17 objects list 300–1,000), most of a page each |
//! | [`MAKE_MIB`] | 32 MiB | estimate: top-level `make` of a kernel build holds the whole tree's rules and dependency lists; tens of MiB |
//!
//! The rate the workload then drives follows from these: 16 jobs of ~24 MiB each living
//! 0.6 s × 16 / 4 = 2.4 s: ≈ 6,000 pages per job per 2.4 s, ≈ 40,000 page faults/s (measured:
//! 1.3–1.5 million in a 34 s `--quick` run), every page freed again at each exit; ≈ 6.7 jobs/s
//! of 13.5 page-cache pages each, ≈ 90 pages (0.35 MiB) of new page cache per second.
//!
//! What the model leaves out (each changes the rates above, not the allocator's paths): THP
//! (3.17 distributions enabled it, but `cc1`'s heap grows in small steps and the VM's 1 GiB is
//! fragmented by the build), the executables' text (page-cache hits, like the headers),
//! `fork`'s copy of `make`'s page tables, writeback of the objects, the linker and `built-in.o`
//! archives at the end of each directory.

use crate::common::page_cache::{PageCache, Pressure};
use crate::common::{Rng, splitmix64};
use pagealloc::{AllocError, Gfp, MovablePages, Order, PAGE_SIZE, Pages, Zone};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `THREAD_SIZE_ORDER` of x86-64 since 3.15: the kernel stack of every new process.
pub(crate) const KERNEL_STACK_ORDER: Order = Order(2);
/// Pages one page-table page maps (`PTRS_PER_PTE` on x86-64).
pub(crate) const PTES_PER_PAGE: u64 = 512;
/// Net new slab pages per process: (unmovable, reclaimable). Estimate (see the module docs).
pub(crate) const SLAB_PAGES_PER_EXEC: (u64, u64) = (2, 1);
/// CPU time of one compile job, ms: uniform in this range. Estimate.
pub(crate) const CC1_CPU_MS: (u64, u64) = (200, 1000);
/// Peak anonymous memory of one compile job, MiB: uniform in this range. Estimate.
pub(crate) const CC1_RSS_MIB: (u64, u64) = (8, 40);
/// Pages of the source file a job reads: uniform in this range. Estimate.
pub(crate) const SOURCE_PAGES: (u64, u64) = (1, 10);
/// Pages of the object file a job writes: uniform in this range. Estimate.
pub(crate) const OBJECT_PAGES: (u64, u64) = (2, 14);
/// The headers the build reads (shared page cache), MiB. Estimate.
pub(crate) const HEADER_MIB: u64 = 16;
/// Header pages one job references. Estimate.
pub(crate) const HEADER_PAGES_PER_JOB: u64 = 256;
/// `make`'s own memory, MiB, held for the run. Estimate.
pub(crate) const MAKE_MIB: u64 = 32;

/// How often a job wakes to fault in the pages due and touch its memory.
const TICK: Duration = Duration::from_millis(5);

const PAGES_PER_MIB: u64 = (1 << 20) / PAGE_SIZE as u64;

/// What the build did, summed over its jobs.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub(crate) struct KbuildStats {
    /// Compile jobs that ran to their exit (or died of an allocation failure).
    pub(crate) processes: u64,
    /// Of those, the ones killed by an allocation failure (the OOM killer's role).
    pub(crate) killed: u64,
    /// Anonymous pages faulted in.
    pub(crate) anon_faults: u64,
    /// Unmovable and reclaimable kernel allocations (stacks, page tables, slab).
    pub(crate) kernel_allocs: u64,
    /// Page-cache pages read (sources) and written (objects).
    pub(crate) page_cache_pages: u64,
    /// Header pages referenced (page-cache hits).
    pub(crate) header_refs: u64,
    /// Allocations that failed.
    pub(crate) alloc_failures: u64,
    /// Pages whose pattern changed under their owner.
    pub(crate) verify_errors: u64,
}

impl KbuildStats {
    /// Add `o` into `self`.
    pub(crate) fn add(&mut self, o: &KbuildStats) {
        self.processes += o.processes;
        self.killed += o.killed;
        self.anon_faults += o.anon_faults;
        self.kernel_allocs += o.kernel_allocs;
        self.page_cache_pages += o.page_cache_pages;
        self.header_refs += o.header_refs;
        self.alloc_failures += o.alloc_failures;
        self.verify_errors += o.verify_errors;
    }

    /// One summary line.
    pub(crate) fn line(&self) -> String {
        format!(
            "kbuild: {} compile jobs ({} killed by allocation failures), {} anonymous page faults, {} kernel allocations, {} page-cache pages read and written, {} header-page references, {} failed allocations",
            self.processes,
            self.killed,
            self.anon_faults,
            self.kernel_allocs,
            self.page_cache_pages,
            self.header_refs,
            self.alloc_failures
        )
    }
}

/// The long-lived part of the build: `make`'s memory and the headers every job reads, as
/// movable pages held for the run (the headers stay cached: every job references them, so
/// 3.17's LRU keeps them on the active list; CMA migrates them like any movable page).
#[derive(Debug)]
pub(crate) struct Kbuild<'z> {
    zone: &'z Zone,
    headers: Mutex<Vec<MovablePages<'z>>>,
    make: Vec<MovablePages<'z>>,
}

impl<'z> Kbuild<'z> {
    /// Start the build on `zone`: `make` reads the tree's rules, the first jobs read the
    /// headers. Allocation failures here leave the sets smaller.
    pub(crate) fn start(zone: &'z Zone) -> Kbuild<'z> {
        let alloc = |n: u64| -> Vec<MovablePages<'z>> {
            (0..n)
                .map_while(|i| {
                    let mut p = zone
                        .alloc_movable_gfp(Order(0), Gfp::GFP_HIGHUSER_MOVABLE)
                        .ok()?;
                    stamp(&mut p, splitmix64(i));
                    Some(p)
                })
                .collect()
        };
        Kbuild {
            zone,
            make: alloc(MAKE_MIB * PAGES_PER_MIB),
            headers: Mutex::new(alloc(HEADER_MIB * PAGES_PER_MIB)),
        }
    }

    /// Reference (pin and check) one header page.
    fn read_header(&self, rng: &mut Rng) -> u64 {
        let mut headers = self.headers.lock().unwrap_or_else(|e| e.into_inner());
        if headers.is_empty() {
            return 0;
        }
        let i = rng.below(headers.len() as u64) as usize;
        u64::from(!verify(&mut headers[i], splitmix64(i as u64)))
    }

    /// Pages whose pattern changed in `make`'s memory and the headers (at the end of a run).
    pub(crate) fn verify_all(&mut self) -> u64 {
        let mut bad = 0;
        let headers = self.headers.get_mut().unwrap_or_else(|e| e.into_inner());
        for set in [&mut self.make, headers] {
            for (i, p) in set.iter_mut().enumerate() {
                bad += u64::from(!verify(p, splitmix64(i as u64)));
            }
        }
        bad
    }

    /// One job slot of `make -jN` (`jobs` = N) on `cpus` CPUs: run compile jobs one after
    /// another until `stop`. `cache` is the page cache of the sources and objects (none: they
    /// are not read or written); `pressure` records allocation failures. `ready` is counted up
    /// once, when the slot's first job has exited: the build runs "on background" once every
    /// slot has gone through a whole job (allocated, worked, exited), not from its first
    /// allocation.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn job_slot(
        &self,
        id: usize,
        seed: u64,
        jobs: usize,
        cpus: u32,
        cache: Option<&PageCache>,
        pressure: &Pressure,
        stop: &AtomicBool,
        ready: &AtomicU64,
    ) -> KbuildStats {
        let mut rng = Rng::new(seed ^ splitmix64(0x6b62_7569_6c64 + id as u64));
        let mut st = KbuildStats::default();
        // Each job gets cpus/jobs of a CPU: wall time = CPU time × jobs / cpus.
        let share = jobs as f64 / f64::from(cpus.max(1));
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let tag = splitmix64(((id as u64) << 40) ^ n ^ seed);
            let mut p = Process {
                zone: self.zone,
                pressure,
                tag,
                anon: Vec::new(),
                kernel: Vec::new(),
                st: &mut st,
            };
            let cpu_ms = range(&mut rng, CC1_CPU_MS);
            let rss = range(&mut rng, CC1_RSS_MIB) * PAGES_PER_MIB;
            let wall = Duration::from_secs_f64(cpu_ms as f64 / 1e3 * share);
            let alive = p.exec()
                && p.read_file(cache, range(&mut rng, SOURCE_PAGES))
                && p.run(self, &mut rng, rss, wall, stop)
                && p.read_file(cache, range(&mut rng, OBJECT_PAGES));
            if !alive {
                p.st.killed += 1;
            }
            p.exit();
            st.processes += 1;
            if st.processes == 1 {
                ready.fetch_add(1, Ordering::SeqCst);
            }
        }
        st
    }
}

/// One compile job's memory.
struct Process<'a, 'z> {
    zone: &'z Zone,
    pressure: &'a Pressure,
    tag: u64,
    /// Anonymous memory, in fault order.
    anon: Vec<MovablePages<'z>>,
    /// Kernel stack, page tables, slab pages.
    kernel: Vec<Pages<'z>>,
    st: &'a mut KbuildStats,
}

impl Process<'_, '_> {
    /// Record a failed allocation; always false (the process dies).
    fn failed(&mut self, e: &AllocError, order: Order, gfp: Gfp) -> bool {
        self.st.alloc_failures += 1;
        if matches!(e, AllocError::OutOfMemory { .. }) {
            self.pressure.allocation_failed(self.zone, order, gfp);
        }
        false
    }

    fn kernel_alloc(&mut self, order: Order, gfp: Gfp) -> bool {
        match self.zone.alloc_pages_gfp(order, gfp) {
            Ok(p) => {
                self.kernel.push(p);
                self.st.kernel_allocs += 1;
                true
            }
            Err(e) => self.failed(&e, order, gfp),
        }
    }

    /// `execve` of the compiler: kernel stack and slab.
    fn exec(&mut self) -> bool {
        let (unmovable, reclaimable) = SLAB_PAGES_PER_EXEC;
        self.kernel_alloc(KERNEL_STACK_ORDER, Gfp::GFP_KERNEL)
            && (0..unmovable).all(|_| self.kernel_alloc(Order(0), Gfp::GFP_KERNEL))
            && (0..reclaimable).all(|_| self.kernel_alloc(Order(0), Gfp::GFP_KERNEL_RECLAIMABLE))
    }

    /// Read or write `pages` new pages of a file through the page cache.
    fn read_file(&mut self, cache: Option<&PageCache>, pages: u64) -> bool {
        let Some(cache) = cache else {
            return true;
        };
        for _ in 0..pages {
            if let Err(e) = cache.read_page(self.zone) {
                return self.failed(&e, Order(0), Gfp::GFP_HIGHUSER_MOVABLE);
            }
            self.st.page_cache_pages += 1;
        }
        true
    }

    /// One anonymous page fault (and its page-table page every [`PTES_PER_PAGE`]).
    fn fault(&mut self) -> bool {
        if self.anon.len() as u64 % PTES_PER_PAGE == 0
            && !self.kernel_alloc(Order(0), Gfp::GFP_KERNEL)
        {
            return false;
        }
        match self
            .zone
            .alloc_movable_gfp(Order(0), Gfp::GFP_HIGHUSER_MOVABLE)
        {
            Ok(mut p) => {
                stamp(&mut p, self.tag.wrapping_add(self.anon.len() as u64));
                self.anon.push(p);
                self.st.anon_faults += 1;
                true
            }
            Err(e) => self.failed(&e, Order(0), Gfp::GFP_HIGHUSER_MOVABLE),
        }
    }

    /// Run for `wall`: fault in `rss` pages evenly over it, reference the headers at the start
    /// (the preprocessor) and touch a random page of its own at every tick.
    fn run(
        &mut self,
        build: &Kbuild<'_>,
        rng: &mut Rng,
        rss: u64,
        wall: Duration,
        stop: &AtomicBool,
    ) -> bool {
        for _ in 0..HEADER_PAGES_PER_JOB {
            self.st.verify_errors += build.read_header(rng);
            self.st.header_refs += 1;
        }
        let t0 = Instant::now();
        loop {
            let f = (t0.elapsed().as_secs_f64() / wall.as_secs_f64().max(1e-9)).min(1.0);
            let due = (rss as f64 * f) as u64;
            while (self.anon.len() as u64) < due {
                if !self.fault() {
                    return false;
                }
            }
            if !self.anon.is_empty() {
                let i = rng.below(self.anon.len() as u64) as usize;
                let tag = self.tag.wrapping_add(i as u64);
                self.st.verify_errors += u64::from(!verify(&mut self.anon[i], tag));
            }
            if f >= 1.0 || stop.load(Ordering::Relaxed) {
                return true;
            }
            std::thread::sleep(TICK);
        }
    }

    /// `exit`: check and free every page at once (anonymous memory first, in fault order, as
    /// `unmap_vmas` → `release_pages` does; then page tables, slab and the stack).
    fn exit(mut self) {
        for (i, mut p) in std::mem::take(&mut self.anon).into_iter().enumerate() {
            let tag = self.tag.wrapping_add(i as u64);
            self.st.verify_errors += u64::from(!verify(&mut p, tag));
        }
        self.kernel.clear();
    }
}

fn range(rng: &mut Rng, (lo, hi): (u64, u64)) -> u64 {
    lo + rng.below(hi - lo + 1)
}

/// Write `tag` into the first word of the page.
fn stamp(p: &mut MovablePages<'_>, tag: u64) {
    p.pin().as_mut_slice()[..8].copy_from_slice(&tag.to_ne_bytes());
}

/// Whether the page still holds `tag`.
fn verify(p: &mut MovablePages<'_>, tag: u64) -> bool {
    p.pin().as_slice()[..8] == tag.to_ne_bytes()
}

// ---- cma_stress --seed-shape ----

/// `cma_stress --seed-shape [--quick]`: the seed's experiment as one preset (flattened into
/// `cma_stress`'s flags; it conflicts with the flags it sets).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub(crate) struct SeedShapeOpts {
    /// The seed's VM and test: 4 CPUs, 1024 MiB with 256 MiB of CMA used
    /// aggressively ([3]), a kernel build (make -j16: 16 compile-job
    /// threads, examples/common/kbuild.rs) with page cache filling free
    /// memory, 30 CMA allocations of 8 MiB at 5 s intervals (150 s)
    #[arg(
        long,
        conflicts_with_all = [
            "threads", "arena_mib", "cma_mib", "allocs", "alloc_mib", "interval_ms",
            "policy", "release_each", "working_set", "cpus", "page_cache", "soak",
        ],
        verbatim_doc_comment
    )]
    pub(crate) seed_shape: bool,
    /// With --seed-shape: the same shape, CMA allocations at 1 s intervals
    /// (30 s)
    #[arg(long, requires = "seed_shape", verbatim_doc_comment)]
    pub(crate) quick: bool,
}

/// The seed's shape (v3 cover letter, 26 Aug 2014).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeedShape {
    /// "4 cpus".
    pub(crate) cpus: u32,
    /// "1024 MB memory".
    pub(crate) arena_mib: usize,
    /// "256 MB CMA reservation".
    pub(crate) cma_mib: usize,
    /// "make -j16".
    pub(crate) jobs: usize,
    /// "30 times CMA allocation".
    pub(crate) allocs: u32,
    /// "(8MB * 30 = 240MB)".
    pub(crate) alloc_mib: usize,
    /// "in 5 sec interval"; 1 s with `--quick`.
    pub(crate) interval_ms: u64,
}

impl SeedShapeOpts {
    /// The shape, if `--seed-shape`.
    pub(crate) fn shape(&self) -> Option<SeedShape> {
        self.seed_shape.then_some(SeedShape {
            cpus: 4,
            arena_mib: 1024,
            cma_mib: 256,
            jobs: 16,
            allocs: 30,
            alloc_mib: 8,
            interval_ms: if self.quick { 1000 } else { 5000 },
        })
    }
}
