//! The checks that read a carbon run back through the render API: the visibility probe that runs
//! beside the run ([`visibility`](crate::visibility)) and the verification after it
//! ([`verify`]). This module only sequences them: start the probe before the
//! run, hand its sampler to the run's sources, then, once the run is over, let the probe finish
//! and verify.

use std::fmt;

use crate::json::JsonObject;
use crate::sampler::Sampler;
use crate::sent::Sent;
use crate::verify::{self, VerifyConfig, VerifyReport};
use crate::visibility::{Probe, VisibilityConfig, VisibilityReport};
use crate::workload::Workload;

/// Checks asked for, the probe already running.
#[derive(Debug)]
pub struct Checks {
    verify: Option<VerifyConfig>,
    probe: Option<Probe>,
    /// The probe's sampler, cloned into every source; dropped before waiting for the probe.
    sampler: Option<Sampler>,
}

impl Checks {
    /// Starts the probe (with `visibility`) for a run of `n_total` points of `workload`; the
    /// verification (with `verify`) comes in [`Checks::finish`].
    pub fn start(
        workload: &Workload,
        n_total: u64,
        verify: Option<VerifyConfig>,
        visibility: Option<VisibilityConfig>,
    ) -> Checks {
        let (probe, sampler) = match visibility {
            Some(cfg) => {
                let (probe, sampler) = Probe::start(workload, n_total, cfg);
                (Some(probe), Some(sampler))
            }
            None => (None, None),
        };
        Checks { verify, probe, sampler }
    }

    /// A sampler for one run's sources, if the probe runs.
    pub fn sampler(&self) -> Option<Sampler> {
        self.sampler.clone()
    }

    /// The run is over and its sources are gone: waits for the probe, then verifies `sent`.
    pub fn finish(mut self, workload: &Workload, sent: &Sent) -> CheckReports {
        self.sampler = None;
        let visibility = self.probe.map(Probe::finish);
        let verify = self.verify.map(|cfg| verify::verify(workload, sent, &cfg));
        CheckReports { verify, visibility }
    }
}

/// What the checks found.
#[derive(Debug, Clone, Default)]
pub struct CheckReports {
    pub verify: Option<VerifyReport>,
    pub visibility: Option<VisibilityReport>,
}

impl CheckReports {
    /// Nothing missing or wrong, every followed point visible.
    pub fn is_clean(&self) -> bool {
        self.verify.as_ref().is_none_or(VerifyReport::is_clean)
            && self.visibility.as_ref().is_none_or(VisibilityReport::is_clean)
    }

    /// One line saying what failed, for the exit status.
    pub fn failure(&self) -> Option<String> {
        if self.is_clean() {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(v) = self.verify.as_ref().filter(|v| !v.is_clean()) {
            let t = &v.tally;
            parts.push(format!(
                "verification: {} missing, {} wrong, {} unverified of {} points",
                t.missing, t.wrong, t.unverified, t.expected
            ));
        }
        if let Some(v) = self.visibility.as_ref().filter(|v| !v.is_clean()) {
            parts.push(format!(
                "visibility: {} of {} followed points not visible within {} s",
                v.n_not_visible,
                v.n_sent,
                v.timeout.as_secs_f64()
            ));
        }
        Some(parts.join("; "))
    }

    /// `json` with `verify` and `visibility` objects added for the checks that ran.
    pub fn add_to(&self, mut json: JsonObject) -> JsonObject {
        if let Some(v) = &self.verify {
            json = json.object("verify", v.to_json_object());
        }
        if let Some(v) = &self.visibility {
            json = json.object("visibility", v.to_json_object());
        }
        json
    }
}

impl fmt::Display for CheckReports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = &self.visibility {
            write!(f, "{v}")?;
        }
        if let Some(v) = &self.verify {
            write!(f, "{v}")?;
        }
        Ok(())
    }
}
