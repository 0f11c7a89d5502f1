//! Fuzzes the CI configuration reader: `ci_config::parse`, then the jobs, variables and includes it finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trigger_doctor::evidence::ci_config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = ci_config::parse(&text) else {
        return;
    };
    let _ = config.includes();
    let _ = config.local_includes();
    let _ = config.variables();
    if let Ok(jobs) = config.jobs() {
        for job in jobs {
            let _ = job.is_hidden();
            let _ = job.effective_variables();
            let _ = job.commands();
            let _ = job.trigger_calls();
            let _ = job.variables_used();
        }
    }
});
