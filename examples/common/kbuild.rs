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
//!    and work on it (a pin of a random page now and then: migration waits for it). With
//!    transparent huge pages (`--thp always`, 3.17's default: see below), the first fault in
//!    a 2 MiB range that lies wholly inside its VMA is a THP fault instead
//!    (`do_huge_pmd_anonymous_page` → `alloc_hugepage_vma`: one order-9 movable compound page,
//!    [`Gfp::GFP_TRANSHUGE`], and a page-table page deposited for it); if that allocation
//!    fails, the range falls back to order-0 faults for good (`thp_fault_fallback`);
//! 5. **write the object file**: new page-cache pages (dirty in the kernel, written back
//!    later; clean here: the model has no writeback);
//! 6. **exit**: everything freed at once: the anonymous pages through `release_pages` →
//!    `free_hot_cold_page_list` → the freeing CPU's pcp (order 0, one by one, as
//!    `free_hot_cold_page_list` calls `free_hot_cold_page` per page: the library has no batched
//!    free and needs none), a THP whole (`free_compound_page` → `__free_pages_ok`: order 9,
//!    not through the pcp), the page tables, the slab pages, the kernel stack.
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
//! | THP `enabled`, `defrag` | `always`, `always` | 3.17 `mm/Kconfig`: `TRANSPARENT_HUGEPAGE_ALWAYS` is the default of the sysfs-defaults choice, and `transparent_hugepage_flags` always sets `TRANSPARENT_HUGEPAGE_DEFRAG_FLAG` (`mm/huge_memory.c`); `hugepage_init` turns THP off only below 512 MiB of RAM (the seed's VM has 1 GiB). `CONFIG_TRANSPARENT_HUGEPAGE` itself defaults to `n` and 3.17's `x86_64_defconfig` leaves it out (and CMA too): the seed's kernel had a config of its own, which the cover letter does not give; distributions of 2014 (Fedora, RHEL 7) shipped THP `always`. An assumption, then, and `--thp never` is the other one |
//! | [`CC1_THP_RANGES`] | 0–2 per job (mean 1, ≈ 2 MiB of the mean 24 MiB RSS) | estimate from cc1's address-space layout against 3.17's rule (below) |
//!
//! # Which part of a cc1's memory can be a THP
//! 3.17 tries a THP only at the **first** fault in a 2 MiB-aligned range (`pmd_none`), and only
//! if the range lies wholly inside the VMA at that moment (`do_huge_pmd_anonymous_page`:
//! `haddr < vma->vm_start || haddr + HPAGE_PMD_SIZE > vma->vm_end` → `VM_FAULT_FALLBACK`, not
//! even counted); a range that fell back has a page table and stays order-0 (khugepaged
//! collapses 4096 pages per 10 s by default: nothing, for jobs living 2–3 s). How cc1 grows
//! its memory decides the rest:
//! - **gcc's GC heap** (`ggc-page.c`), most of cc1's memory: `alloc_page` mmaps 1 MiB
//!   (`GGC_QUIRE_SIZE` 256, gcc 4.4) or 2 MiB chunks wherever `mmap` puts them (top-down,
//!   page-aligned, no 2 MiB alignment in 3.17), hands out the chunk's first page at once and
//!   the rest in ascending order. Chunks stack downwards and merge into one VMA, but every
//!   2 MiB range's first fault is a chunk's first page, while the part of the range below it
//!   is not mapped yet: fallback, unless a chunk starts 2 MiB-aligned (1 in 512). Andrea
//!   Arcangeli's 2010 THP kernel-build benchmark (linux-mm, "Kernel build bench with
//!   Transparent Hugepage Support #29") needed a gcc patch that aligns these chunks to 2 MiB;
//!   gcc never took it (gcc 6's `alloc_anon` still maps unaligned). `--thp ggc-aligned` runs
//!   that patched gcc: a diagnostic bound, not the seed's machine.
//! - **glibc's brk heap**: grows by the request plus `M_TOP_PAD` (128 KiB) and writes the new
//!   top chunk's header at once, so a range's first fault comes as soon as the brk enters it:
//!   fallback, unless one request extends the heap by more than 2 MiB.
//! - **large single mappings**: glibc's `mmap`ped chunks (requests of at least
//!   `M_MMAP_THRESHOLD`, 128 KiB rising to 32 MiB) and ggc's own maps for objects larger than
//!   a page (`alloc_anon(NULL, entry_size)`): the first write at the mapping's start falls
//!   back, but the ranges wholly inside get a THP as they are first touched. These are cc1's
//!   large tables (hash tables, line maps, big vectors); a kernel file at `-O2` has a few of
//!   MiBs: [`CC1_THP_RANGES`], an estimate, placed at random points of the job's faults.
//!
//! The rate the workload then drives follows from these: 16 jobs of ~24 MiB each living
//! 0.6 s × 16 / 4 = 2.4 s: ≈ 6,000 pages per job per 2.4 s, ≈ 40,000 page faults/s (measured:
//! 1.3–1.5 million in a 34 s `--quick` run), every page freed again at each exit; ≈ 6.7 jobs/s
//! of 13.5 page-cache pages each, ≈ 90 pages (0.35 MiB) of new page cache per second.
//!
//! What the model leaves out (each changes the rates above, not the allocator's paths):
//! khugepaged, the huge zero page (read faults: cc1 writes its memory), the executables' text
//! (page-cache hits, like the headers),
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
/// 2 MiB ranges of one job's anonymous memory that can be THP-backed at their first fault
/// (3.17 `enabled=always`, stock gcc and glibc): uniform in this range. Estimate (see the
/// module docs).
pub(crate) const CC1_THP_RANGES: (u64, u64) = (0, 2);
/// Pages of one THP (`HPAGE_PMD_NR`).
pub(crate) const HPAGE_PMD_NR: u64 = 512;

/// `/sys/kernel/mm/transparent_hugepage/enabled` for the build's jobs, and the heap layout
/// that decides which ranges can be THP-backed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Thp {
    /// `always` (3.17's default), stock gcc and glibc: [`CC1_THP_RANGES`] per job.
    #[default]
    Always,
    /// `never`: every fault order 0 (the model before THP).
    Never,
    /// Diagnostic, not the seed's machine: `always` with gcc's GC heap mapped in 2 MiB-aligned
    /// chunks (Andrea Arcangeli's 2010 gcc patch): every 2 MiB of a job's memory can be a THP.
    GgcAligned,
}

/// How often a job wakes to fault in the pages due and touch its memory.
const TICK: Duration = Duration::from_millis(5);

const PAGES_PER_MIB: u64 = (1 << 20) / PAGE_SIZE as u64;

/// What the build did, summed over its jobs.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub(crate) struct KbuildStats {
    /// Compile jobs that ran to their exit (or died of an allocation failure).
    pub(crate) processes: u64,
    /// Of those, the ones killed by an allocation failure (the OOM killer's role). 0 in the
    /// seed's shape with `--thp always` in 15 quick runs (all five presets, seeds 2, 4 and 5),
    /// as with `--thp never` before. Before the slow path's retry fix (branch `thp2`) `--thp always` runs
    /// lost 1–7 jobs per preset over 5 quick runs: `GFP_KERNEL` order-0 requests (page
    /// tables, slab) failed after 16 rounds of direct reclaim that each freed 32–43 pages,
    /// all of them CMA pages (the page cache's oldest pages sit in the CMA area), while the
    /// zone had 1,650–14,293 free pages but only 220–2,190 outside CMA against `min` 1024.
    /// 3.17 retries such a request without bound while reclaim makes progress, so that was
    /// the model's bound, not an OOM kill 3.17 would make; see `docs/seed-experiment.md`.
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
    /// THP faults served (`thp_fault_alloc`). The zone's `/proc/vmstat` counts the same
    /// events (its `thp_fault_alloc` / `thp_fault_fallback` lines count `GFP_TRANSHUGE`
    /// requests served / failed), except that a fault whose page-table allocation fails after
    /// the huge page was had is a served request there and a killed job here.
    pub(crate) thp_fault_alloc: u64,
    /// THP faults whose order-9 allocation failed and fell back to order 0
    /// (`thp_fault_fallback`).
    pub(crate) thp_fault_fallback: u64,
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
        self.thp_fault_alloc += o.thp_fault_alloc;
        self.thp_fault_fallback += o.thp_fault_fallback;
    }

    /// One summary line.
    pub(crate) fn line(&self) -> String {
        format!(
            "kbuild: {} compile jobs ({} killed by allocation failures), {} anonymous page faults, {} kernel allocations, {} page-cache pages read and written, {} header-page references, {} failed allocations; thp_fault_alloc {}, thp_fault_fallback {}",
            self.processes,
            self.killed,
            self.anon_faults,
            self.kernel_allocs,
            self.page_cache_pages,
            self.header_refs,
            self.alloc_failures,
            self.thp_fault_alloc,
            self.thp_fault_fallback
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
        thp: Thp,
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
            let cpu_ms = range(&mut rng, CC1_CPU_MS);
            let rss = range(&mut rng, CC1_RSS_MIB) * PAGES_PER_MIB;
            let thp_ranges = thp_ranges(&mut rng, thp, rss);
            let mut p = Process {
                zone: self.zone,
                pressure,
                tag,
                anon: Vec::new(),
                pages: 0,
                thp_ranges,
                kernel: Vec::new(),
                st: &mut st,
            };
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
    /// Anonymous memory, in fault order (order-0 pages and THPs).
    anon: Vec<MovablePages<'z>>,
    /// Anonymous pages faulted in (a THP counts its 512).
    pages: u64,
    /// The 2 MiB ranges (indices of [`HPAGE_PMD_NR`]-page steps of the job's faults) whose
    /// first fault is a THP fault.
    thp_ranges: Vec<u64>,
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

    /// One anonymous page fault (and its page-table page every [`PTES_PER_PAGE`]). The first
    /// fault of a THP range is a THP fault: `do_huge_pmd_anonymous_page` allocates the huge
    /// page first (`GFP_TRANSHUGE`, order 9) and then the page table it deposits; if the huge
    /// page cannot be had, the range falls back to order-0 faults (`thp_fault_fallback`).
    fn fault(&mut self) -> bool {
        let new_range = self.pages % PTES_PER_PAGE == 0;
        if new_range && self.thp_ranges.contains(&(self.pages / HPAGE_PMD_NR)) {
            match self.zone.alloc_movable_gfp(Order(9), Gfp::GFP_TRANSHUGE) {
                Ok(mut p) => {
                    if !self.kernel_alloc(Order(0), Gfp::GFP_KERNEL) {
                        return false;
                    }
                    stamp(&mut p, self.tag.wrapping_add(self.anon.len() as u64));
                    self.anon.push(p);
                    self.pages += HPAGE_PMD_NR;
                    self.st.anon_faults += 1;
                    self.st.thp_fault_alloc += 1;
                    return true;
                }
                // Quiet (`__GFP_NOWARN`), and not a failure of the process.
                Err(_) => self.st.thp_fault_fallback += 1,
            }
        }
        if new_range && !self.kernel_alloc(Order(0), Gfp::GFP_KERNEL) {
            return false;
        }
        match self
            .zone
            .alloc_movable_gfp(Order(0), Gfp::GFP_HIGHUSER_MOVABLE)
        {
            Ok(mut p) => {
                stamp(&mut p, self.tag.wrapping_add(self.anon.len() as u64));
                self.anon.push(p);
                self.pages += 1;
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
            while self.pages < due {
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

/// Which of a job's 2 MiB ranges (of `rss` pages, in fault order) get a THP fault.
fn thp_ranges(rng: &mut Rng, thp: Thp, rss: u64) -> Vec<u64> {
    let n = rss / HPAGE_PMD_NR;
    match thp {
        Thp::Never => Vec::new(),
        Thp::GgcAligned => (0..n).collect(),
        Thp::Always => {
            let want = range(rng, CC1_THP_RANGES).min(n);
            let mut v: Vec<u64> = Vec::new();
            while (v.len() as u64) < want {
                let r = rng.below(n);
                if !v.contains(&r) {
                    v.push(r);
                }
            }
            v
        }
    }
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
