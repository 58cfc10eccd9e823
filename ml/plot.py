"""`python -m ml plot --origin JFK --year Y`: one airport's year as a PNG.

Top panel: mean departure delay, the expected value and band, flagged days. Bottom panel: the
cancellation rate against its baseline and upper band, cancellation waves marked.
"""

from __future__ import annotations

from pathlib import Path

from lakehouse.errors import UserError


def plot_airport(origin: str, year: int, out: str | Path) -> str:
    """Write the PNG for (origin, year) from ml.dep_delay_anomalies; returns its path."""
    from lakehouse.warehouse import connect
    from ml import store

    with connect(part="ml") as conn:
        if not store.table_exists(conn, *store.ANOMALY_TABLE):
            raise UserError("ml.dep_delay_anomalies does not exist: run "
                            f"`python -m ml score --year {year}` first")
        df = store.read_anomalies(conn, year, origin)
    if df.empty:
        raise UserError(f"no scored rows for {origin} in {year}: check the IATA code and run "
                        f"`python -m ml score --year {year}`")
    return render(df, origin, year, out)


def render(df, origin: str, year: int, out: str | Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    df = df.sort_values("fl_date")
    x = pd.to_datetime(df["fl_date"])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    ax1.fill_between(x, df["dep_delay_band_low"].astype(float),
                     df["dep_delay_band_high"].astype(float), color="tab:blue", alpha=0.15,
                     label="expected band")
    ax1.plot(x, df["expected_dep_delay"].astype(float), color="tab:blue", lw=1, label="expected")
    ax1.plot(x, df["mean_dep_delay"].astype(float), color="black", lw=0.8,
             label="mean departure delay")
    delay_flag = df["is_anomaly"] & df["anomaly_kind"].isin(["delay", "both"])
    ax1.scatter(x[delay_flag], df.loc[delay_flag, "mean_dep_delay"].astype(float),
                color="tab:red", zorder=3, s=28, label="anomaly (delay)")
    ax1.set_ylabel("minutes")
    top = np.nanmax(df["mean_dep_delay"].to_numpy(dtype=float, na_value=np.nan))
    if np.isfinite(top):
        ax1.set_ylim(top=top * 1.12 + 5)
    ax1.set_title(f"{origin} {year}: departure delay and cancellations "
                  f"({int(df['is_anomaly'].sum())} anomalous days)")
    ax1.legend(loc="upper left", fontsize=8, ncol=4)

    ax2.plot(x, df["cancel_rate"].astype(float), color="black", lw=0.8, label="cancel rate")
    ax2.plot(x, df["expected_cancel_rate"].astype(float), color="tab:orange", lw=1,
             label="baseline")
    ax2.plot(x, df["cancel_rate_band_high"].astype(float), color="tab:orange", lw=0.8, ls="--",
             label="upper band")
    cancel_flag = df["is_anomaly"] & df["anomaly_kind"].isin(["cancellation", "both"])
    ax2.scatter(x[cancel_flag], df.loc[cancel_flag, "cancel_rate"].astype(float),
                color="tab:purple", zorder=3, s=28, label="anomaly (cancellations)")
    ax2.set_ylabel("share cancelled")
    ax2.set_ylim(0, min(1.05, 1.12 * np.nanmax(
        df["cancel_rate"].to_numpy(dtype=float, na_value=np.nan)) + 0.05))
    ax2.legend(loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return str(out)
