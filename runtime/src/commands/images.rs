//! `images`: the images in the store.

use anyhow::Result;

use super::Env;

pub fn run(env: &Env) -> Result<u8> {
    println!("{:<32} {:<16} {:<14} {:>10}", "REPOSITORY", "TAG", "IMAGE ID", "SIZE");
    for i in env.ctx().store()?.list()? {
        println!(
            "{:<32} {:<16} {:<14} {:>10}",
            i.repository,
            i.tag,
            &i.id[..12],
            human_size(i.size)
        );
    }
    Ok(0)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(4_200_000), "4.2MB");
    }
}
