use super::*;
use crate::imagespec::seccomp::{Profile, Target};
use crate::oci::seccomp_bpf::libseccomp_bpf;

fn reference(s: &LinuxSeccomp) -> Vec<Insn> {
    from_bytes(&libseccomp_bpf(s).unwrap())
}

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

fn nr(name: &str, arch: ScmpArch) -> u32 {
    i32::from(ScmpSyscall::from_name_by_arch(name, arch).unwrap()) as u32
}

fn ask(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    run(prog, &Data { nr, arch, ip: 0, args }).unwrap().0
}

const ERRNO_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

/// docker's profile as minirun resolves it here, for docker's default
/// capabilities and for all of them: compact, several times shorter than
/// libseccomp's, and deciding as it does.
#[test]
#[cfg(target_arch = "x86_64")]
fn the_default_profile_is_compact_and_decides_as_libseccomp() {
    let default_caps: Vec<String> = crate::imagespec::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let all_caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    for caps in [default_caps, all_caps] {
        let s = Profile::default_profile().resolve(&Target::host(&caps));
        let libseccomp = reference(&s);
        let short = compact_or_why(&s, &libseccomp).unwrap();
        assert!(
            short.len() * 2 < libseccomp.len(),
            "{} instructions vs libseccomp's {}",
            short.len(),
            libseccomp.len()
        );
        same_decisions(&short, &libseccomp, &known_arches(&s).unwrap()).unwrap();

        // and what the profile says, read from the program itself
        let x64 = ScmpArch::X8664;
        assert_eq!(ask(&short, AUDIT_X86_64, nr("read", x64), [0; 6]), ALLOW);
        assert_eq!(ask(&short, AUDIT_X86_64, nr("kexec_load", x64), [0; 6]), ERRNO_EPERM);
        assert_eq!(ask(&short, AUDIT_I386, nr("read", ScmpArch::X86), [0; 6]), ALLOW);
        // x86's own socket call, beside socketcall
        assert_eq!(ask(&short, AUDIT_I386, 359, [0; 6]), ALLOW);
        // an architecture the filter does not name
        assert_eq!(ask(&short, AUDIT_AARCH64, 0, [0; 6]), BAD_ARCH);
        if !caps.iter().any(|c| c == "CAP_SYS_ADMIN") {
            // clone with CLONE_NEWUSER is refused, plain clone allowed
            let clone = nr("clone", x64);
            assert_eq!(
                ask(&short, AUDIT_X86_64, clone, [0x1000_0000, 0, 0, 0, 0, 0]),
                ERRNO_EPERM
            );
            assert_eq!(ask(&short, AUDIT_X86_64, clone, [0x11, 0, 0, 0, 0, 0]), ALLOW);
        }
    }
}

/// Every operator, on both words of 64-bit arguments, repeated indices (either
/// holds), several errno values and actions, x32 beside x86_64: compact, and
/// deciding as libseccomp on every probe.
#[test]
#[cfg(target_arch = "x86_64")]
fn every_operator_decides_as_libseccomp() {
    let s = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
        "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
        "syscalls":[
          {"names":["read","write","close","openat","exit_group","mmap","brk"],"action":"SCMP_ACT_ALLOW"},
          {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":5},
          {"names":["kill"],"action":"SCMP_ACT_KILL_PROCESS"},
          {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_EQ"}]},
          {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
          {"names":["dup3"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":81985529216486895,"op":"SCMP_CMP_NE"}]},
          {"names":["lseek"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":4294967301,"op":"SCMP_CMP_LT"},{"index":2,"value":2,"op":"SCMP_CMP_LE"}]},
          {"names":["pread64"],"action":"SCMP_ACT_ALLOW","args":[{"index":3,"value":8589934592,"op":"SCMP_CMP_GT"}]},
          {"names":["pwrite64"],"action":"SCMP_ACT_ALLOW","args":[{"index":3,"value":4294967296,"op":"SCMP_CMP_GE"}]},
          {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
          {"names":["fcntl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":2,"op":"SCMP_CMP_EQ"}]},
          {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":18446744069414584320,"valueTwo":81604378624,"op":"SCMP_CMP_MASKED_EQ"}]},
          {"names":["no_such_call_anywhere"],"action":"SCMP_ACT_ALLOW"}
        ]}"#,
    );
    let libseccomp = reference(&s);
    // (shorter than libseccomp's only for long profiles: built and checked here)
    let short = build(&s).unwrap();
    same_decisions(&short, &libseccomp, &known_arches(&s).unwrap()).unwrap();
    // the two personality rules: either value
    let p = nr("personality", ScmpArch::X8664);
    assert_eq!(ask(&short, AUDIT_X86_64, p, [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(ask(&short, AUDIT_X86_64, p, [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        ask(&short, AUDIT_X86_64, p, [0x1_ffff_ffff, 0, 0, 0, 0, 0]),
        libc::SECCOMP_RET_ERRNO | 38
    );
    // x32's read
    assert_eq!(ask(&short, AUDIT_X86_64, nr("read", ScmpArch::X32), [0; 6]), ALLOW);
}

/// The check itself sees a program that decides one thing differently.
#[test]
#[cfg(target_arch = "x86_64")]
fn a_different_decision_is_seen() {
    let s = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
          {"names":["dup3"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":524288,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let libseccomp = reference(&s);
    let good = build(&s).unwrap();
    let arches = known_arches(&s).unwrap();
    same_decisions(&good, &libseccomp, &arches).unwrap();
    // every return changed in turn, and every compared constant
    for at in 0..good.len() {
        let mut bad = good.clone();
        if bad[at].code == RET {
            bad[at].k ^= 1;
        } else if bad[at].code == JEQ || bad[at].code == JGE {
            bad[at].k = bad[at].k.wrapping_add(1);
        } else {
            continue;
        }
        assert!(
            same_decisions(&bad, &libseccomp, &arches).is_err(),
            "a change at {at} ({:?}) went unseen",
            good[at]
        );
    }
}

/// Shapes this module leaves to libseccomp: a multiplexed call whose
/// multiplexer is not allowed outright, and two actions for one call.
#[test]
#[cfg(target_arch = "x86_64")]
fn other_shapes_keep_libseccomps_program() {
    let socket_only = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
        "syscalls":[{"names":["socket","read"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(compact(&socket_only, &reference(&socket_only)).is_none());
    let two_actions = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["dup3"],"action":"SCMP_ACT_ERRNO","args":[{"index":2,"value":1,"op":"SCMP_CMP_EQ"}]},
          {"names":["dup3"],"action":"SCMP_ACT_KILL","args":[{"index":2,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(build(&two_actions).unwrap_err().contains("two actions"));
}

#[test]
fn intervals_merge_neighbours_and_fill_gaps() {
    let d = |a| Decision::Ret(a);
    let map: BTreeMap<u32, Decision> = [(0, d(1)), (1, d(1)), (2, d(1)), (5, d(1)), (6, d(2))].into();
    assert_eq!(
        intervals(&map, 9, Some((100, 7))),
        vec![
            (0, d(1)),
            (3, d(9)),
            (5, d(1)),
            (6, d(2)),
            (7, d(9)),
            (100, d(7)),
            (u32::MAX, d(9))
        ]
    );
    let top: BTreeMap<u32, Decision> = [(u32::MAX, d(1))].into();
    assert_eq!(intervals(&top, 9, None), vec![(0, d(9)), (u32::MAX, d(1))]);
}

/// An architecture where every call has one answer: its tree is a return.
#[test]
#[cfg(target_arch = "x86_64")]
fn a_profile_without_rules_is_a_return_per_architecture() {
    let s = profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"]}"#);
    let prog = build(&s).unwrap();
    same_decisions(&prog, &reference(&s), &known_arches(&s).unwrap()).unwrap();
    assert_eq!(ask(&prog, AUDIT_I386, 3, [0; 6]), ERRNO_EPERM);
}
