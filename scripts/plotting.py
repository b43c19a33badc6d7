"""What the plot scripts share: matplotlib without a display, and how a figure is finished."""
import sys


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear exit when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: plotting needs matplotlib (pip install matplotlib, or apt-get install python3-matplotlib)")
    return plt


def finish(fig, axes, output, dpi=110):
    """Grid and legend on every axis, tight layout, then write `output` and say so."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=dpi)
    print(f"wrote {output}")
