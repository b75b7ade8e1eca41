//! How much CPU a process has used: for the start-up timing line and the cold-start
//! bench, where CPU time compares start-ups on a busy machine better than wall time.

/// CPU time of every thread of process `pid` (`"self"`: this one) so far, ns, from Linux's
/// `/proc/<pid>/task/*/schedstat`; `None` where `/proc` cannot tell. Also what the
/// cold-start bench reads of the processes it starts.
pub fn process_cpu_ns(pid: &str) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total = total.saturating_add(stat.split_whitespace().next()?.parse::<u64>().ok()?);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_some_and_a_missing_one_none() {
        if std::path::Path::new("/proc/self/task").exists() {
            assert!(super::process_cpu_ns("self").is_some_and(|ns| ns > 0));
        }
        assert_eq!(super::process_cpu_ns("not-a-pid"), None);
    }
}
