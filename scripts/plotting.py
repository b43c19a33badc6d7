"""What the plot scripts share: matplotlib without a display, how a figure is finished, and how
any output file is written without silent loss."""
import os
import stat
import sys
import tempfile


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear exit when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: plotting needs matplotlib (pip install matplotlib, or apt-get install python3-matplotlib)")
    return plt


def write_atomically(path, write):
    """Calls write(f) with a binary file that becomes `path` only once all of it is on disk: a
    temporary file next to it, flushed, fsynced and renamed over it. A failed or short write (full
    disk, quota, read-only or vanished folder) exits with one message naming the file and status
    1, leaves the previous `path` as it was, and removes the temporary file. A path that is not a
    regular file (a device such as /dev/full, a pipe) is written in place."""
    try:
        special = os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        special = False
    tmp = None
    try:
        if special:
            with open(path, "wb") as f:
                write(f)
                f.flush()
            return
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        sys.stderr.write(f"error: cannot write {path}: {e.strerror or e}\n")
        sys.exit(1)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_text(path, text):
    """`text` (UTF-8) into `path`, atomically (write_atomically)."""
    write_atomically(path, lambda f: f.write(text.encode()))


def savefig(fig, path, dpi=110):
    """The figure as `path` (format from its extension), atomically; says so."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    write_atomically(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))
    print(f"wrote {path}")


def finish(fig, axes, output, dpi=110):
    """Grid and legend on every axis, tight layout, then write `output` and say so."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    savefig(fig, output, dpi=dpi)
