//! The record a running `surge up` leaves in its data directory (`surge-up.json`), so that
//! operator commands (`surge drill`) can find the deployment, talk to it, stop it and start it
//! again the same way.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const FILE: &str = "surge-up.json";

/// A `surge up` process and how it was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningDeployment {
    pub pid: u32,
    /// Where its API listens, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Its executable, command line and working directory, to start it again.
    pub exe: PathBuf,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub started_at: DateTime<Utc>,
}

impl RunningDeployment {
    /// This process, listening at `url`.
    pub fn this_process(url: String) -> RunningDeployment {
        RunningDeployment {
            pid: std::process::id(),
            url,
            exe: std::env::current_exe().unwrap_or_default(),
            argv: std::env::args().collect(),
            cwd: std::env::current_dir().unwrap_or_default(),
            started_at: Utc::now(),
        }
    }

    /// Leaves the record in `data_dir`.
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("the record serialises");
        let path = data_dir.join(FILE);
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(partial, path)
    }

    /// Removes the record if it is this one's (a newer deployment may have replaced it).
    pub fn remove(&self, data_dir: &Path) {
        if find(data_dir).is_some_and(|found| found.pid == self.pid) {
            let _ = std::fs::remove_file(data_dir.join(FILE));
        }
    }
}

/// The deployment recorded in `data_dir`, if its process is still alive.
pub fn find(data_dir: &Path) -> Option<RunningDeployment> {
    let bytes = std::fs::read(data_dir.join(FILE)).ok()?;
    let found: RunningDeployment = serde_json::from_slice(&bytes).ok()?;
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(found.pid).ok()?), None).is_ok();
    alive.then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_found_while_its_process_lives_and_removed_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find(dir.path()), None);
        let me = RunningDeployment::this_process("http://127.0.0.1:1".into());
        me.write(dir.path()).unwrap();
        assert_eq!(find(dir.path()), Some(me.clone()));
        let other = RunningDeployment { pid: me.pid + 1, ..me.clone() };
        other.remove(dir.path());
        assert!(find(dir.path()).is_some(), "only the owner removes the record");
        me.remove(dir.path());
        assert_eq!(find(dir.path()), None);

        let dead = RunningDeployment { pid: i32::MAX as u32, ..me };
        dead.write(dir.path()).unwrap();
        assert_eq!(find(dir.path()), None, "a record of a dead process is ignored");
    }
}
