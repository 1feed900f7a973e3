/* sysprobe: tries one syscall and prints "ok" or the errno's name, for the
 * security tests (built static with the host's cc, copied into a test image).
 *   sysprobe add_key | keyctl | fork | clone_newns | unshare_user | mknod PATH | chown PATH
 *            | open PATH r|w|rw */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int report(long rc) {
    if (rc < 0) {
        printf("%s\n", strerrorname_np(errno));
        return 1;
    }
    printf("ok\n");
    return 0;
}

static char stack[65536];
static int child(void *arg) { (void)arg; return 0; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *what = argv[1];
    if (!strcmp(what, "add_key"))
        return report(syscall(SYS_add_key, "user", "minirun-test", "x", 1, -2 /* session */));
    if (!strcmp(what, "keyctl"))
        return report(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* process */, 1));
    if (!strcmp(what, "fork")) {
        pid_t p = fork();
        if (p == 0) _exit(0);
        if (p > 0) waitpid(p, NULL, 0);
        return report(p);
    }
    if (!strcmp(what, "clone_newns")) {
        pid_t p = clone(child, stack + sizeof stack, CLONE_NEWNS | SIGCHLD, NULL);
        if (p > 0) waitpid(p, NULL, 0);
        return report(p);
    }
    if (!strcmp(what, "unshare_user"))
        return report(unshare(CLONE_NEWUSER));
    if (!strcmp(what, "mknod") && argc > 2)
        return report(mknod(argv[2], S_IFCHR | 0600, makedev(1, 3)));
    if (!strcmp(what, "chown") && argc > 2)
        return report(chown(argv[2], 1234, 1234));
    if (!strcmp(what, "open") && argc > 3) {
        int flags = !strcmp(argv[3], "r") ? O_RDONLY : !strcmp(argv[3], "w") ? O_WRONLY : O_RDWR;
        return report(open(argv[2], flags));
    }
    return 2;
}
