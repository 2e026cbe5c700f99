//! Runs the external tools (poppler's `pdftotext`, `pdfinfo`, `pdfdetach`, `pdftoppm`, and
//! `tesseract`) on untrusted documents without letting them hurt the worker.
//!
//! Each tool runs as its own process under util-linux `prlimit` (address space, CPU seconds,
//! size of files it writes, no core dumps), with stdin closed, a cleared environment, its own
//! process group, a wall-clock deadline after which the group is killed, and a cap on what it
//! may print. A parser bug, a decompression bomb or an endless loop in a tool thus costs at most
//! one document's budget and never the worker process.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::ExtractError;
use crate::limits::Limits;

/// What `prlimit` prints when it cannot start the tool (it then exits with 127).
const EXEC_FAILED: &str = "failed to execute";
/// Most stderr kept for error messages.
const STDERR_CAP: u64 = 64 * 1024;
/// Longest pause between two looks at a running tool.
const MAX_POLL: Duration = Duration::from_millis(20);

/// The resources one document may still spend, shared by every tool run for it.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    /// When the document's time is up.
    deadline: Instant,
    /// The whole budget, for messages.
    total: Duration,
    memory_bytes: u64,
    max_output_bytes: u64,
}

impl Budget {
    /// A budget starting now, from the document's limits.
    pub(crate) fn start(limits: &Limits) -> Budget {
        Budget {
            deadline: Instant::now() + limits.time,
            total: limits.time,
            memory_bytes: limits.memory_bytes,
            max_output_bytes: limits.max_output_bytes,
        }
    }

    /// Time left; zero once the deadline has passed.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Fails once the deadline has passed, for checks between steps.
    pub(crate) fn check(&self) -> Result<(), ExtractError> {
        if self.remaining().is_zero() { Err(self.time_exceeded()) } else { Ok(()) }
    }

    fn time_exceeded(&self) -> ExtractError {
        ExtractError::OverBudget(format!(
            "reading the document took longer than its budget of {} s",
            self.total.as_secs()
        ))
    }
}

/// One tool run: the program, its arguments and the directory it works in.
pub(crate) struct Tool<'a> {
    program: &'a str,
    args: Vec<&'a OsStr>,
    dir: &'a Path,
    env: Vec<(&'a str, &'a str)>,
}

/// What a tool that exited successfully printed.
#[derive(Debug)]
pub(crate) struct ToolOutput {
    pub(crate) stdout: Vec<u8>,
}

/// Why a tool did not produce its output.
#[derive(Debug)]
pub(crate) enum ToolError {
    /// Ran out of time, memory, CPU or output: the document is too expensive to read.
    OverBudget(ExtractError),
    /// The tool is not installed or could not be started.
    Unavailable(ExtractError),
    /// The tool ran and reported failure, usually because the document is damaged.
    Failed { program: String, status: ExitStatus, stderr: String },
}

impl ToolError {
    /// The extraction error for this failure; a tool's own failure becomes `failed(...)`.
    pub(crate) fn into_extract_error(self, failed: impl FnOnce(&str) -> ExtractError) -> ExtractError {
        match self {
            ToolError::OverBudget(error) | ToolError::Unavailable(error) => error,
            ToolError::Failed { program, status, stderr } => {
                let reason = last_line(&stderr).unwrap_or_else(|| describe(status));
                failed(&format!("{program}: {reason}"))
            }
        }
    }
}

impl<'a> Tool<'a> {
    /// A run of `program` in `dir`.
    pub(crate) fn new(program: &'a str, dir: &'a Path) -> Tool<'a> {
        Tool { program, args: Vec::new(), dir, env: Vec::new() }
    }

    /// Appends arguments.
    pub(crate) fn args(mut self, args: impl IntoIterator<Item = &'a str>) -> Tool<'a> {
        self.args.extend(args.into_iter().map(OsStr::new));
        self
    }

    /// Sets an environment variable (the environment is otherwise cleared but for `PATH`).
    pub(crate) fn env(mut self, key: &'a str, value: &'a str) -> Tool<'a> {
        self.env.push((key, value));
        self
    }

    /// Runs the tool under `budget` and returns what it printed, or why it failed.
    pub(crate) fn run(&self, budget: &Budget) -> Result<ToolOutput, ToolError> {
        let remaining = budget.remaining();
        if remaining.is_zero() {
            return Err(ToolError::OverBudget(budget.time_exceeded()));
        }
        let mut child = self.spawn(budget, remaining)?;
        let overflow = Arc::new(AtomicBool::new(false));
        let stdout = child.stdout.take().map(|out| capture(out, budget.max_output_bytes, Arc::clone(&overflow)));
        let stderr = child.stderr.take().map(capture_stderr);
        let status = wait(&mut child, budget, &overflow);
        let stdout = stdout.map(join_capture).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr.map(join_capture).unwrap_or_default()).into_owned();
        let status = status?;
        if overflow.load(Ordering::Relaxed) {
            return Err(ToolError::OverBudget(ExtractError::OverBudget(format!(
                "{} produced more than {} bytes of output",
                self.program, budget.max_output_bytes
            ))));
        }
        self.verdict(status, stdout, stderr, budget)
    }

    fn spawn(&self, budget: &Budget, remaining: Duration) -> Result<Child, ToolError> {
        // CPU seconds: the wall-clock budget left, plus one so the deadline usually fires first.
        let cpu = remaining.as_secs() + 1;
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--as={}", budget.memory_bytes))
            .arg(format!("--cpu={cpu}:{}", cpu + 1))
            .arg(format!("--fsize={}", budget.max_output_bytes))
            .arg("--core=0")
            .arg("--")
            .arg(self.program)
            .args(&self.args)
            .current_dir(self.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        command.spawn().map_err(|err| {
            ToolError::Unavailable(ExtractError::ToolUnavailable(format!(
                "cannot start prlimit (util-linux) for {}: {err}; run scripts/deps",
                self.program
            )))
        })
    }

    /// Sorts an exit status into success, a budget overrun, a missing tool or a tool failure.
    fn verdict(
        &self,
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: String,
        budget: &Budget,
    ) -> Result<ToolOutput, ToolError> {
        if status.success() {
            return Ok(ToolOutput { stdout });
        }
        let program = self.program;
        if status.code() == Some(127) && stderr.contains(EXEC_FAILED) {
            return Err(ToolError::Unavailable(ExtractError::ToolUnavailable(format!(
                "{program} is not installed; run scripts/deps"
            ))));
        }
        let out_of_memory = stderr.contains("error while loading shared libraries")
            || stderr.contains("bad_alloc")
            || stderr.to_ascii_lowercase().contains("out of memory")
            || stderr.contains("Cannot allocate memory");
        let signal = status.signal().or_else(|| status.code().filter(|c| *c > 128).map(|c| c - 128));
        let out_of_cpu = matches!(signal, Some(libc_signal::SIGXCPU | libc_signal::SIGKILL));
        let out_of_file = signal == Some(libc_signal::SIGXFSZ);
        if out_of_memory {
            return Err(ToolError::OverBudget(ExtractError::OverBudget(format!(
                "{program} needed more than the memory budget of {} MiB",
                budget.memory_bytes / (1024 * 1024)
            ))));
        }
        if out_of_cpu {
            return Err(ToolError::OverBudget(budget.time_exceeded()));
        }
        if out_of_file {
            return Err(ToolError::OverBudget(ExtractError::OverBudget(format!(
                "{program} wrote more than {} bytes",
                budget.max_output_bytes
            ))));
        }
        Err(ToolError::Failed { program: program.to_owned(), status, stderr })
    }
}

/// Signal numbers the verdict needs (Linux), without pulling in `libc`.
mod libc_signal {
    pub(super) const SIGKILL: i32 = 9;
    pub(super) const SIGXCPU: i32 = 24;
    pub(super) const SIGXFSZ: i32 = 25;
}

/// Waits for `child`, killing its process group at the deadline or when its output overflows.
fn wait(child: &mut Child, budget: &Budget, overflow: &AtomicBool) -> Result<ExitStatus, ToolError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(err) => {
                kill_group(child);
                return Err(ToolError::Unavailable(ExtractError::ToolUnavailable(format!(
                    "cannot wait for a tool: {err}"
                ))));
            }
        }
        if overflow.load(Ordering::Relaxed) {
            kill_group(child);
            return child.wait().map_err(|err| {
                ToolError::Unavailable(ExtractError::ToolUnavailable(format!("cannot wait for a tool: {err}")))
            });
        }
        let remaining = budget.remaining();
        if remaining.is_zero() {
            kill_group(child);
            let _ = child.wait();
            return Err(ToolError::OverBudget(budget.time_exceeded()));
        }
        std::thread::sleep(pause.min(remaining));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// Kills the child's whole process group. The child has not been reaped yet, so its id (which
/// is also the group's) cannot have been reused.
fn kill_group(child: &mut Child) {
    let group = i32::try_from(child.id()).map(nix::unistd::Pid::from_raw);
    if let Ok(group) = group {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill();
}

/// Reads a tool's stdout on a thread, keeping at most `cap` bytes and raising `overflow` past it.
fn capture(stdout: ChildStdout, cap: u64, overflow: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut limited = stdout.take(cap + 1);
        let _ = limited.read_to_end(&mut kept);
        if kept.len() as u64 > cap {
            overflow.store(true, Ordering::Relaxed);
            kept.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
        }
        kept
    })
}

/// Reads a tool's stderr on a thread, keeping the first [`STDERR_CAP`] bytes and draining the
/// rest so the tool never blocks on a full pipe.
fn capture_stderr(stderr: ChildStderr) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut stderr = stderr;
        let _ = (&mut stderr).take(STDERR_CAP).read_to_end(&mut kept);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        kept
    })
}

fn join_capture(handle: std::thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

/// The last non-empty line of a tool's stderr (usually its verdict), for error messages.
fn last_line(stderr: &str) -> Option<String> {
    stderr.lines().map(str::trim).rfind(|line| !line.is_empty()).map(|line| line.chars().take(300).collect())
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "failed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(time: Duration) -> Budget {
        Budget::start(&Limits { time, max_output_bytes: 1000, ..Limits::default() })
    }

    #[test]
    fn captures_output() {
        let dir = std::env::temp_dir();
        let output = Tool::new("echo", &dir).args(["hello"]).run(&budget(Duration::from_secs(10))).expect("runs");
        assert_eq!(output.stdout, b"hello\n");
    }

    #[test]
    fn kills_at_the_deadline() {
        let dir = std::env::temp_dir();
        let started = Instant::now();
        let result = Tool::new("sleep", &dir).args(["30"]).run(&budget(Duration::from_millis(300)));
        assert!(matches!(result, Err(ToolError::OverBudget(ExtractError::OverBudget(_)))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn caps_output() {
        let dir = std::env::temp_dir();
        let result = Tool::new("yes", &dir).run(&budget(Duration::from_secs(10)));
        assert!(matches!(result, Err(ToolError::OverBudget(_))), "{result:?}");
    }

    #[test]
    fn missing_tool_is_unavailable() {
        let dir = std::env::temp_dir();
        let result = Tool::new("surge-no-such-tool", &dir).run(&budget(Duration::from_secs(10)));
        assert!(matches!(result, Err(ToolError::Unavailable(ExtractError::ToolUnavailable(_)))), "{result:?}");
    }

    #[test]
    fn failure_keeps_the_reason() {
        let dir = std::env::temp_dir();
        let result = Tool::new("ls", &dir).args(["/surge/no/such/path"]).run(&budget(Duration::from_secs(10)));
        let error = result.expect_err("ls fails").into_extract_error(|m| ExtractError::Malformed(m.to_owned()));
        assert!(matches!(&error, ExtractError::Malformed(m) if m.starts_with("ls: ")), "{error:?}");
    }
}
