//! What the examples (and `benches/mmtests.rs`, `tests/threads.rs`) share: command-line flags, the
//! seeded PRNG, the stop flag set by SIGINT/SIGTERM, CPU pinning. (A directory module, so Cargo
//! does not build it as an example of its own.)
#![allow(dead_code)] // each example uses a different part
#![allow(clippy::disallowed_types)] // the stop flag is a plain std atomic: the loom shim rule is the library's

use pagealloc::Fixes;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

// ---- stop flag ----

/// Set by SIGINT/SIGTERM (or by the example itself at its deadline).
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// Whether the run should stop.
pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Make SIGINT and SIGTERM set [`STOP`] (the first one; a second one exits at once, with
/// status 130), through `ctrlc`.
pub(crate) fn install_signal_handlers() {
    let result = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = result {
        eprintln!("warning: no Ctrl-C handler ({e}); stop the run with a timeout instead");
    }
}

// ---- CPU pinning ----

/// Pin the calling thread to CPU `cpu` (modulo the CPUs there are), where the OS allows;
/// returns whether it did.
pub(crate) fn pin_to_cpu(cpu: usize) -> bool {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: `set` is a plain bitmask owned by this frame; CPU_ZERO/CPU_SET write inside it
    // (the index is reduced below CPU_SETSIZE), and sched_setaffinity reads
    // `size_of::<cpu_set_t>()` bytes from it. A failure only leaves the thread unpinned.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET((cpu % n) % libc::CPU_SETSIZE as usize, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

// ---- flags ----

/// The outcome of an example's `parse_args` (`Ok(None)`: `--help`): the arguments, or the
/// exit code after printing the usage (`--help`: to stdout, success; a bad flag: the error and
/// the usage to stderr, exit code 2).
pub(crate) fn args_or_exit<T>(
    prog: &str,
    usage: &str,
    parsed: Result<Option<T>, String>,
) -> Result<T, std::process::ExitCode> {
    let fixes = if usage.contains("--fixes") {
        format!("\n--fixes: {FIXES_HELP}.\n")
    } else {
        String::new()
    };
    match parsed {
        Ok(Some(a)) => Ok(a),
        Ok(None) => {
            println!("{usage}{fixes}");
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{prog}: {e}\n\n{usage}{fixes}");
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// The command line as `--flag value` or `--flag=value` pairs.
pub(crate) struct Flags {
    args: std::iter::Skip<std::env::Args>,
    flag: String,
    inline: Option<String>,
}

impl Flags {
    /// This process's arguments.
    pub(crate) fn from_env() -> Flags {
        Flags {
            args: std::env::args().skip(1),
            flag: String::new(),
            inline: None,
        }
    }

    /// The next flag; an error if the previous one was given `=value` it does not take.
    pub(crate) fn next_flag(&mut self) -> Result<Option<String>, String> {
        if self.inline.is_some() {
            return Err(format!("{} takes no value", self.flag));
        }
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        (self.flag, self.inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        Ok(Some(self.flag.clone()))
    }

    /// The current flag's value.
    pub(crate) fn value(&mut self) -> Result<String, String> {
        self.inline
            .take()
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{} needs a value", self.flag))
    }

    /// The current flag's value, parsed.
    pub(crate) fn num<T: FromStr>(&mut self) -> Result<T, String> {
        let v = self.value()?;
        v.trim()
            .parse::<T>()
            .map_err(|_| format!("{}: bad value {v:?}", self.flag))
    }

    /// The current flag's value as a `u64`, decimal or `0x` hex (seeds).
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        let v = self.value()?;
        let t = v.trim();
        match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => t.parse::<u64>(),
        }
        .map_err(|_| format!("{}: bad value {v:?}", self.flag))
    }

    /// The current flag's value as fix sets, one grammar for every example (see
    /// [`FIXES_HELP`]): `;` separates sets (runs); within a set, `,` and `+` join presets and
    /// flags (their union), as `Fixes::from_str` parses it. `none;all` → two runs;
    /// `recheck-free-one-page,recheck-pcp-bulk;all` → two runs, the first with two flags.
    pub(crate) fn fixes_list(&mut self) -> Result<Vec<Fixes>, String> {
        let v = self.value()?;
        let out = v
            .split(';')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| e.parse::<Fixes>().map_err(|err| format!("--fixes: {err}")))
            .collect::<Result<Vec<_>, _>>()?;
        if out.is_empty() {
            return Err("--fixes: empty list".into());
        }
        Ok(out)
    }
}

/// How every example reads `--fixes` (one line of each example's `--help`).
pub(crate) const FIXES_HELP: &str = "a fix set is a preset (none, seed, v3.18, v4.6, all) or \
presets and flag names joined by ',' or '+' (their union); ';' separates sets to run one after \
another, and --fixes may be repeated";

/// A seed from the clock and the pid, for runs without `--seed`.
pub(crate) fn default_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    splitmix64(t.as_nanos() as u64 ^ u64::from(std::process::id()))
}

// ---- PRNG ----

/// splitmix64's finaliser: a good 64-bit mix.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// xorshift64*, seeded through splitmix64.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed) | 1)
    }

    /// The next 64 bits.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next() >> 32) * u128::from(n)) >> 32) as u64
    }

    /// True with probability `pct` %.
    pub(crate) fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}
