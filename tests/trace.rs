//! The kmem tracepoints (issue 15 item 2): a workload that fires every event, and every line
//! of its trace checked against the kernel's published format strings — the line prefix of
//! 3.17's `trace_print_context`, and each event's `TP_printk` format, turned into a matcher
//! from the format text itself (kept below with its source).
//!
//! With `PAGEALLOC_TRACE_POSTPROCESS` naming a copy of the kernel's
//! `Documentation/trace/postprocess/trace-pagealloc-postprocess.pl` (not vendored here: it is
//! GPL; `scripts/trace_check.sh` runs this test with it) and `perl` on the machine, the
//! trace is also fed to that script and its per-process table checked against the trace.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

use pagealloc::*;
use std::collections::HashMap;
use std::path::PathBuf;

/// The kernel's formats, copied from the kernel's text (not from the crate):
/// `include/trace/events/kmem.h` at v3.17 for the six kmem events;
/// `include/trace/events/page_isolation.h` as added in v4.4 (Joonsoo Kim, "mm/page_isolation:
/// add new tracepoint, test_pages_isolated"); `include/trace/events/cma.h` as in mainline when
/// that was added (Stefan Strogin's cma_alloc/cma_release events with `align`). The last line
/// is this crate's own ledger event, which no kernel has.
const KERNEL_FORMATS: &[(&str, &str)] = &[
    (
        "mm_page_alloc",
        "page=%p pfn=%lu order=%d migratetype=%d gfp_flags=%s",
    ),
    ("mm_page_free", "page=%p pfn=%lu order=%d"),
    ("mm_page_free_batched", "page=%p pfn=%lu order=0 cold=%d"),
    (
        "mm_page_pcpu_drain",
        "page=%p pfn=%lu order=%d migratetype=%d",
    ),
    (
        "mm_page_alloc_zone_locked",
        "page=%p pfn=%lu order=%u migratetype=%d percpu_refill=%d",
    ),
    (
        "mm_page_alloc_extfrag",
        "page=%p pfn=%lu alloc_order=%d fallback_order=%d pageblock_order=%d alloc_migratetype=%d fallback_migratetype=%d fragmenting=%d change_ownership=%d",
    ),
    (
        "test_pages_isolated",
        "start_pfn=0x%lx end_pfn=0x%lx fin_pfn=0x%lx ret=%s",
    ),
    ("cma_alloc", "pfn=%lx page=%p count=%u align=%u"),
    ("cma_release", "pfn=%lx page=%p count=%u"),
    ("pagealloc_ledger", "race=%s path=%s free=%ld cma=%ld"),
];

/// One value a conversion matched.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    /// `%p`: `None` for `(null)`.
    Ptr(Option<u64>),
    Int(i128),
    Str(String),
}

/// Match `fields` against the `printf` format `fmt` (the conversions the formats above use:
/// `%p`, `%d`, `%u`, `%lu`, `%ld`, `%lx`, `%s`; everything else literal). `%p` is what 3.17's
/// `vsprintf` prints for a pointer: 16 lower-case hex digits, or `(null)` right-aligned in 16
/// columns. Returns the values, or where the match failed.
fn match_format(fmt: &str, fields: &str) -> Result<Vec<Val>, String> {
    let mut vals = Vec::new();
    let (mut f, mut s) = (fmt, fields);
    while !f.is_empty() {
        if let Some(rest) = f.strip_prefix('%') {
            let (conv, rest) = ["lu", "ld", "lx", "p", "d", "u", "s"]
                .iter()
                .find_map(|c| rest.strip_prefix(c).map(|r| (*c, r)))
                .ok_or_else(|| format!("unsupported conversion in {fmt:?}"))?;
            f = rest;
            let take = |s: &str, ok: fn(char) -> bool| s.find(|c: char| !ok(c)).unwrap_or(s.len());
            match conv {
                "p" => {
                    if s.len() >= 16 && s[..16].trim_start() == "(null)" {
                        vals.push(Val::Ptr(None));
                        s = &s[16..];
                    } else {
                        let n = take(s, |c| c.is_ascii_digit() || ('a'..='f').contains(&c));
                        if n != 16 {
                            return Err(format!("%p wants 16 hex digits at {s:?}"));
                        }
                        vals.push(Val::Ptr(Some(u64::from_str_radix(&s[..16], 16).unwrap())));
                        s = &s[16..];
                    }
                }
                "lx" => {
                    let n = take(s, |c| c.is_ascii_digit() || ('a'..='f').contains(&c));
                    if n == 0 {
                        return Err(format!("%lx wants hex digits at {s:?}"));
                    }
                    vals.push(Val::Int(i128::from_str_radix(&s[..n], 16).unwrap()));
                    s = &s[n..];
                }
                "s" => {
                    let n = take(s, |c| !c.is_whitespace());
                    if n == 0 {
                        return Err(format!("%s wants a word at {s:?}"));
                    }
                    vals.push(Val::Str(s[..n].to_owned()));
                    s = &s[n..];
                }
                signed => {
                    let neg = matches!(signed, "d" | "ld") && s.starts_with('-');
                    let digits = &s[neg as usize..];
                    let n = take(digits, |c| c.is_ascii_digit());
                    if n == 0 || (n > 1 && digits.starts_with('0')) {
                        return Err(format!("%{signed} wants a decimal at {s:?}"));
                    }
                    let v: i128 = digits[..n].parse().unwrap();
                    vals.push(Val::Int(if neg { -v } else { v }));
                    s = &digits[n..];
                }
            }
        } else {
            let lit_end = f.find('%').unwrap_or(f.len());
            let lit = &f[..lit_end];
            s = s
                .strip_prefix(lit)
                .ok_or_else(|| format!("wanted {lit:?} at {s:?}"))?;
            f = &f[lit_end..];
        }
    }
    if !s.is_empty() {
        return Err(format!("trailing {s:?}"));
    }
    Ok(vals)
}

/// One parsed line.
#[derive(Debug)]
struct Line {
    comm: String,
    pid: u64,
    cpu: u64,
    flags: Option<String>,
    ts: (u64, u64),
    event: String,
    vals: Vec<Val>,
}

/// Parse one line by 3.17's `trace_print_context` (`"%16s-%-5d [%03d] "`, the `irq-info`
/// column if `irq_info`, `" %5lu.%06lu: "`) and `ftrace_raw_output_prep` (`"%s: "`), then the
/// event's format.
fn parse_line(line: &str, irq_info: bool) -> Result<Line, String> {
    let err = |what: &str| format!("{what} in {line:?}");
    // "%16s": at least 16 columns, right-aligned; comm has at most 15 bytes.
    let dash = line[16..]
        .find('-')
        .map(|i| i + 16)
        .ok_or_else(|| err("no comm-pid"))?;
    let comm = line[..dash].trim_start();
    if dash != 16 || comm.is_empty() || comm.len() > 15 || line[..16 - comm.len()].trim() != "" {
        return Err(err("comm not right-aligned in 16 columns"));
    }
    // "%-5d " then "[%03d] ".
    let rest = &line[17..];
    let bracket = rest.find(" [").ok_or_else(|| err("no [cpu]"))?;
    let pid_field = &rest[..bracket];
    let pid_digits = pid_field.trim_end();
    if pid_field.len() < 5
        || pid_digits.is_empty()
        || !pid_digits.bytes().all(|b| b.is_ascii_digit())
        || (pid_field.len() > 5 && pid_field.len() != pid_digits.len())
    {
        return Err(err("pid not %-5d"));
    }
    let rest = &rest[bracket + 2..];
    let close = rest.find("] ").ok_or_else(|| err("no ]"))?;
    let cpu_s = &rest[..close];
    if cpu_s.len() < 3 || !cpu_s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("cpu not %03d"));
    }
    let mut rest = &rest[close + 2..];
    let flags = if irq_info {
        // trace_print_lat_fmt: irqs-off, need-resched, hard/softirq, preempt depth.
        let f = rest.get(..4).ok_or_else(|| err("no flags"))?;
        let b = f.as_bytes();
        let ok = b"d.X".contains(&b[0])
            && b"Nnp.".contains(&b[1])
            && b"Hhs.".contains(&b[2])
            && (b[3] == b'.' || b[3].is_ascii_hexdigit());
        if !ok {
            return Err(err("flags not d..1 style"));
        }
        rest = &rest[4..];
        Some(f.to_owned())
    } else {
        None
    };
    // " %5lu.%06lu: "
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| err("no space before time"))?;
    let colon = rest.find(": ").ok_or_else(|| err("no time"))?;
    let time = &rest[..colon];
    let (secs, usecs) = time.split_once('.').ok_or_else(|| err("time not s.us"))?;
    if time.len() < 12
        || usecs.len() != 6
        || !usecs.bytes().all(|b| b.is_ascii_digit())
        || !secs.trim_start().bytes().all(|b| b.is_ascii_digit())
        || secs.trim_start().is_empty()
    {
        return Err(err("time not %5lu.%06lu"));
    }
    let rest = &rest[colon + 2..];
    let colon = rest.find(": ").ok_or_else(|| err("no event name"))?;
    let event = &rest[..colon];
    let fields = &rest[colon + 2..];
    let fmt = KERNEL_FORMATS
        .iter()
        .find(|(name, _)| *name == event)
        .ok_or_else(|| err("unknown event"))?
        .1;
    let vals = match_format(fmt, fields).map_err(|e| err(&format!("{event}: {e}")))?;
    Ok(Line {
        comm: comm.to_owned(),
        pid: pid_digits.parse().unwrap(),
        cpu: cpu_s.parse().unwrap(),
        flags,
        ts: (secs.trim_start().parse().unwrap(), usecs.parse().unwrap()),
        event: event.to_owned(),
        vals,
    })
}

/// `struct page *` of `pfn` as the crate prints it (x86-64 vmemmap, 64-byte pages).
fn page_of(pfn: i128) -> Val {
    Val::Ptr(Some(0xffff_ea00_0000_0000u64 + pfn as u64 * 64))
}

fn int(v: &Val) -> i128 {
    match v {
        Val::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn trace_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pagealloc-{name}-{}.trace", std::process::id()))
}

/// Every event, from two zones sharing one trace: a per-CPU zone in R2's shape (refills,
/// allocation failure, the pcp drain, a ledger note) and a per-thread zone with CMA
/// (fallback, batched free, isolation tested both ways, CMA allocation, failure and release).
fn workload(trace: &Trace) {
    // Zone 1: tests/ledger.rs's R2 scenario, traced.
    let z = Zone::new(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::NONE,
        pcp_mode: PcpMode::PerCpu(2),
        ledger: true,
        trace: Some(trace.clone()),
        ..ZoneConfig::tiny(16)
    })
    .unwrap();
    while z.alloc_pfn(Order(0), Migratetype::Movable).is_ok() {}
    z.free_pfn(Pfn(9), Order(0)).unwrap();
    z.drain_all_pages();
    std::thread::scope(|s| {
        s.spawn(|| {
            set_thread_cpu(Some(1));
            z.free_pfn(Pfn(8), Order(0)).unwrap();
        });
    });
    z.set_migratetype_isolate(Pfn(8)).unwrap();
    z.drain_all_pages();
    let r = z.audit();
    assert_eq!((r.drift_free, r.drift_cma), (-2, -2), "{r}");

    // Zone 2: per-thread pcps, CMA, fixes on.
    let z = Zone::new(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::ALL,
        trace: Some(trace.clone()),
        ..ZoneConfig::tiny(32)
    })
    .unwrap();
    // No Unmovable pageblock yet: a fallback that claims a Movable one.
    let u = z.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap();
    let big = z.alloc_pfn(Order(2), Migratetype::Movable).unwrap();
    let pages: Vec<Pfn> = (0..3)
        .map(|_| z.alloc_pfn(Order(0), Migratetype::Movable).unwrap())
        .collect();
    z.free_hot_cold_page_list(&pages, true).unwrap();
    z.free_pfn(big, Order(2)).unwrap();
    z.drain_all_pages();
    // Isolation: a free range passes test_pages_isolated, a range holding a page fails it.
    let held = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
    let block = |p: Pfn| Pfn(p.0 & !3);
    let busy = block(held);
    let free = Pfn((0..8)
        .map(|b| b * 4)
        .find(|&s| s != busy.0 && s != block(u).0)
        .unwrap());
    for (start, ok) in [(free, true), (busy, false)] {
        let end = Pfn(start.0 + 4);
        z.start_isolate_page_range(start, end, Migratetype::Movable)
            .unwrap();
        assert_eq!(z.test_pages_isolated(start, end).is_ok(), ok);
        z.undo_isolate_page_range(start, end, Migratetype::Movable)
            .unwrap();
    }
    z.free_pfn(held, Order(0)).unwrap();
    z.free_pfn(u, Order(0)).unwrap();
    // CMA: 4 of the area's 8 pages, then 8 (no room: a failed cma_alloc), then release.
    let cma = z.cma().unwrap();
    let got = cma.alloc(4, Order(2)).unwrap();
    assert!(cma.alloc(8, Order(0)).is_err());
    drop(got);
    z.drain_all_pages();
    z.audit().assert_ok();
}

fn run_traced(name: &str, opts: TraceOptions) -> (String, u64) {
    let path = trace_path(name);
    let trace = Trace::create(&path, opts).unwrap();
    workload(&trace);
    trace.flush().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    (text, trace.lines())
}

#[test]
fn every_line_matches_the_kernel_formats() {
    let (text, lines) = run_traced("all", TraceOptions::default());
    if std::env::var_os("PAGEALLOC_TRACE_SHOW").is_some() {
        eprintln!("{text}");
    }
    assert_eq!(text.lines().count() as u64, lines);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last = (0, 0);
    // comm: a named thread's name, else the process's (the workload's scoped thread is
    // unnamed), cut to 15 bytes as TASK_COMM_LEN cuts it.
    let cut = |n: &str| n[..n.len().min(15)].to_owned();
    let argv0 = std::env::args().next().unwrap();
    let process = cut(std::path::Path::new(&argv0)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap());
    let me = match std::thread::current().name() {
        Some(n) if n != "main" => cut(n),
        _ => process.clone(),
    };
    for line in text.lines() {
        let l = parse_line(line, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(l.ts >= last, "time went back at {line:?}");
        last = l.ts;
        assert!(l.pid > 0 && l.cpu < u64::from(MAX_CPUS), "{line:?}");
        assert!(l.flags.is_none());
        *seen.entry(l.event.clone()).or_default() += 1;
        let v = &l.vals;
        // The values agree with each other as the kernel's would.
        match l.event.as_str() {
            "mm_page_alloc" | "mm_page_alloc_zone_locked" => {
                if v[0] == Val::Ptr(None) {
                    assert_eq!(int(&v[1]), 0, "{line:?}"); // `page ? page_to_pfn(page) : 0`
                } else {
                    assert_eq!(v[0], page_of(int(&v[1])), "{line:?}");
                    assert_eq!(int(&v[1]) % (1 << int(&v[2])), 0, "unaligned {line:?}");
                }
                if l.event == "mm_page_alloc_zone_locked" {
                    assert_eq!(int(&v[4]), (int(&v[2]) == 0) as i128, "{line:?}");
                }
            }
            "mm_page_free" | "mm_page_free_batched" | "mm_page_pcpu_drain" => {
                assert_eq!(v[0], page_of(int(&v[1])), "{line:?}");
            }
            "mm_page_alloc_extfrag" => {
                assert_eq!(v[0], page_of(int(&v[1])), "{line:?}");
                assert_eq!(int(&v[4]), 1, "tiny zones have pageblock_order 1: {line:?}");
                assert_eq!(int(&v[7]), (int(&v[3]) < int(&v[4])) as i128, "{line:?}");
            }
            "test_pages_isolated" => {
                let ok = Val::Str(
                    if int(&v[1]) == int(&v[2]) {
                        "success"
                    } else {
                        "fail"
                    }
                    .into(),
                );
                assert_eq!(v[3], ok, "{line:?}");
            }
            "cma_alloc" => {
                if v[1] == Val::Ptr(None) {
                    assert_eq!(int(&v[0]), i128::from(u64::MAX), "{line:?}"); // -1UL
                } else {
                    assert_eq!(v[1], page_of(int(&v[0])), "{line:?}");
                }
            }
            "cma_release" => assert_eq!(v[1], page_of(int(&v[0])), "{line:?}"),
            _ => {}
        }
        assert!(
            l.comm == me || l.comm == process,
            "comm {:?} in {line:?}",
            l.comm
        );
    }
    for (name, _) in KERNEL_FORMATS {
        assert!(
            seen.get(*name).copied().unwrap_or(0) > 0,
            "no {name} in:\n{text}"
        );
    }
    // The specific lines the workload must have produced.
    let has = |pat: &str| text.lines().any(|l| l.contains(pat));
    assert!(has(
        ": mm_page_alloc: page=          (null) pfn=0 order=0 migratetype=2 gfp_flags=GFP_MOVABLE"
    ));
    assert!(has(
        ": pagealloc_ledger: race=R2 path=free_pcppages_bulk free=-2 cma=-2"
    ));
    assert!(has(" ret=success") && has(" ret=fail"));
    assert!(has(
        ": cma_alloc: pfn=ffffffffffffffff page=          (null) count=8 align=0"
    ));
    assert!(has(": mm_page_free_batched:") && has(" cold=1"));
    // Zone 2's Unmovable request takes a whole Movable top-order block and its pageblocks;
    // zone 1's Movable requests fall back to CMA, which never changes owner.
    assert!(has(
        " fallback_order=2 pageblock_order=1 alloc_migratetype=0 fallback_migratetype=2 fragmenting=0 change_ownership=1"
    ));
    assert!(has(
        " alloc_migratetype=2 fallback_migratetype=4 fragmenting=0 change_ownership=0"
    ));
}

#[test]
fn the_filter_keeps_only_the_events_asked_for() {
    let events = TraceEvent::parse_list("cma_alloc,test_pages_isolated").unwrap();
    let (text, lines) = run_traced(
        "filtered",
        TraceOptions {
            events,
            irq_info: false,
        },
    );
    // The workload is deterministic: the same lines as an unfiltered run has of the two
    // (two cma_alloc, one failed; test_pages_isolated from the test and from the CMA
    // allocation's alloc_contig_range).
    let (all, _) = run_traced("unfiltered", TraceOptions::default());
    let wanted = |l: &&str| l.contains(": cma_alloc: ") || l.contains(": test_pages_isolated: ");
    assert_eq!(lines, all.lines().filter(wanted).count() as u64, "{text}");
    assert!(lines >= 4, "{text}");
    for line in text.lines() {
        let l = parse_line(line, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            l.event.as_str(),
            "cma_alloc" | "test_pages_isolated"
        ));
    }
    assert!(TraceEvent::parse_list("mm_page_alloc,mm_page_nope").is_err());
}

#[test]
fn irq_info_adds_the_flags_column() {
    let (text, _) = run_traced(
        "irq",
        TraceOptions {
            events: Vec::new(),
            irq_info: true,
        },
    );
    let mut flags = HashMap::new();
    for line in text.lines() {
        let l = parse_line(line, true).unwrap_or_else(|e| panic!("{e}"));
        flags.insert(l.event, l.flags.unwrap());
        // Without the option the same line does not parse: the column is really there.
        assert!(parse_line(line, false).is_err(), "{line:?}");
    }
    // 3.17 counts the tracepoint's own preemption level; the zone lock adds one and turns
    // interrupts off.
    assert_eq!(flags["mm_page_alloc"], "...1");
    assert_eq!(flags["mm_page_free"], "...1");
    assert_eq!(flags["mm_page_alloc_zone_locked"], "d..2");
    assert_eq!(flags["mm_page_pcpu_drain"], "d..2");
    assert_eq!(flags["pagealloc_ledger"], "d..2");
}

#[test]
fn a_write_error_is_reported_not_panicked() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("broken pipe"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::other("broken pipe"))
        }
    }
    let trace = Trace::new(Broken, TraceOptions::default());
    workload(&trace);
    assert!(trace.flush().is_err());
}

/// A trace an example wrote (`PAGEALLOC_TRACE_FILE`, as `scripts/trace_check.sh` sets it
/// after a `cma_stress --trace` run): every line parses by the line format and its event's
/// kernel format, in time order. Skipped (with a message) when the variable is unset.
#[test]
fn a_given_trace_matches_line_for_line() {
    let Some(path) = std::env::var_os("PAGEALLOC_TRACE_FILE") else {
        eprintln!("skipped: set PAGEALLOC_TRACE_FILE to a trace to check (scripts/trace_check.sh)");
        return;
    };
    let irq_info = std::env::var_os("PAGEALLOC_TRACE_IRQ_INFO").is_some();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last = (0, 0);
    for line in text.lines() {
        let l = parse_line(line, irq_info).unwrap_or_else(|e| panic!("{e}"));
        assert!(l.ts >= last, "time went back at {line:?}");
        last = l.ts;
        *seen.entry(l.event).or_default() += 1;
    }
    assert!(!seen.is_empty(), "{path:?} is empty");
    let mut counts: Vec<_> = seen.into_iter().collect();
    counts.sort();
    eprintln!("{path:?}: every line matches; lines per event: {counts:?}");
}

/// The kernel's own post-processing script reads the trace unchanged. Skipped (with a
/// message) unless `PAGEALLOC_TRACE_POSTPROCESS` names the script and `perl` runs.
#[test]
fn the_kernels_postprocess_script_reads_it() {
    let Some(script) = std::env::var_os("PAGEALLOC_TRACE_POSTPROCESS") else {
        eprintln!(
            "skipped: set PAGEALLOC_TRACE_POSTPROCESS to a copy of the kernel's \
             Documentation/trace/postprocess/trace-pagealloc-postprocess.pl \
             (scripts/trace_check.sh)"
        );
        return;
    };
    if !std::path::Path::new(&script).is_file() {
        eprintln!("skipped: PAGEALLOC_TRACE_POSTPROCESS={script:?} is not a file");
        return;
    }
    let (text, _) = run_traced("perl", TraceOptions::default());
    let out = match std::process::Command::new("perl")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
        Err(e) => {
            eprintln!("skipped: perl does not run: {e}");
            return;
        }
    };
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8(out.stdout).unwrap();
    eprintln!("{report}");
    assert!(!report.contains("WARNING"), "{report}");
    // The table's rows: "process-pid" then 13 counts; the script's first three columns are
    // mm_page_alloc, mm_page_alloc_zone_locked, mm_page_free, its fourth the batched frees.
    let mut sums = [0u64; 13];
    let mut rows = 0;
    for row in report.lines() {
        let cols: Vec<&str> = row.split_whitespace().collect();
        if cols.len() == 14 && cols[1..].iter().all(|c| c.parse::<u64>().is_ok()) {
            rows += 1;
            for (s, c) in sums.iter_mut().zip(&cols[1..]) {
                *s += c.parse::<u64>().unwrap();
            }
        }
    }
    assert!(rows > 0, "{report}");
    let count = |ev: &str| {
        text.lines()
            .filter(|l| l.contains(&format!(": {ev}: ")))
            .count() as u64
    };
    assert_eq!(sums[0], count("mm_page_alloc"), "{report}");
    assert_eq!(sums[1], count("mm_page_alloc_zone_locked"), "{report}");
    assert_eq!(sums[2], count("mm_page_free"), "{report}");
    assert_eq!(sums[3], count("mm_page_free_batched"), "{report}");
    assert_eq!(sums[4], count("mm_page_pcpu_drain"), "{report}");
    assert_eq!(sums[7], count("mm_page_alloc_extfrag"), "{report}");
    // Everything else (isolation, CMA, ledger) lands in its "Unknown" column.
    let others = [
        "test_pages_isolated",
        "cma_alloc",
        "cma_release",
        "pagealloc_ledger",
    ];
    assert_eq!(
        sums[12],
        others.iter().map(|e| count(e)).sum::<u64>(),
        "{report}"
    );
}
