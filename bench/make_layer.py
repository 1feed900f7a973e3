#!/usr/bin/env python3
"""Write a gzip layer of about 200 MB of mixed files taken from /usr, for
the unpack benchmark: bench/make_layer.py OUT.tar.gz"""
import os
import sys
import tarfile

LIMIT = 200 * 1000 * 1000


def main(out: str) -> None:
    total = 0
    with tarfile.open(out + ".tmp", "w:gz", compresslevel=6) as tar:
        for top in ("/usr/share", "/usr/lib", "/usr/libexec"):
            for root, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(dirs) + sorted(files):
                    if total >= LIMIT:
                        break
                    path = os.path.join(root, name)
                    try:
                        tar.add(path, arcname=path.lstrip("/"), recursive=False)
                    except OSError:
                        continue
                    if os.path.isfile(path) and not os.path.islink(path):
                        total += os.path.getsize(path)
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv[1])
