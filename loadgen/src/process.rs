//! The server's CPU time and memory, read from `/proc` (Linux).

/// CPU seconds (user + system) the processes have used so far.
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name (which may hold spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks as f64 / 100.0)
}

/// Resident memory of the processes, in MiB.
pub fn rss_mib(pids: &[u32]) -> Option<f64> {
    let mut kib = 0u64;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        kib += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(kib as f64 / 1024.0)
}

/// This process's own CPU seconds.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(&[std::process::id()]).unwrap_or(0.0)
}
