"""The airport and carrier universe the sample-data generator draws from.

Real US IATA codes (coordinates, state and time zone from the `airportsdata` package), ranked
roughly by their 2018 departures in the BTS on-time data so the heavy tail of real traffic
(a few hubs carry most flights, hundreds of small fields see a few a day) comes out right.
The universe does not depend on the generator's seed: every generated year shares it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# Ranked by (approximate) 2018 departures; the order matters, the exact rank does not.
_RANKED_IATA_TEXT = """
ATL ORD DFW DEN CLT LAX SFO PHX IAH LAS MSP SEA DTW BOS MCO EWR SLC LGA JFK BWI
DCA MDW SAN PHL FLL IAD TPA DAL HOU BNA PDX STL AUS MCI RDU SJC OAK SMF MSY SNA
MIA CLE SAT IND PIT MKE CMH RSW CVG HNL SJU BDL JAX ABQ OMA OGG BUR ONT BUF OKC
MEM TUS ELP BOI ANC RIC ORF SDF PBI TUL CHS GRR DSM BHM SAV LIT PVD ALB GSP KOA
LIH RNO SYR ROC GSO MHT PNS TYS DAY XNA MSN LGB SRQ CID COS HSV FAT PSP MYR LEX
GEG JAN MAF ICT LBB ECP BTR SGF PWM BTV AMA CRP FSD FAR AVL CAE CHA CAK MOB VPS
SBA DAB MFE HPN ISP EYW FAY ILM ROA SBN SHV TLH TRI GPT PIA MLI MSO EUG FNT GRB
PSC LAN EVV BIL BIS MDT ATW AZO BZN JAC FCA RAP MRY LFT LRD HRL BRO GJT DRO MTJ
EGE ASE HDN SUN IDA TWF PIH GTF HLN BTM MFR RDM RDD ACV SMX SBP STS FLG PRC YUM
SGU PVU CYS CPR COD RKS GCC SHR RIW LAR AEX MLU LCH BPT TYR ACT ABI SJT SPS LAW
GGG TXK CLL ROW HOB SAF SLN GCK HYS LBL DDC MHK GRI LNK EAR LBF JLN COU SPI CMI
BMI DEC MWA UIN PAH OWB SUX DBQ ALO MCW FOD BRL CWA EAU LSE RST DLH INL HIB BJI
BRD STC MOT ISN DIK JMS DVL GFK ABR PIR ATY MBS TVC PLN APN ESC MQT CMX IMT IWD
RHI MKG ERI ELM ITH BGM IAG AVP ABE LBE SCE ACY TTN SWF PBG OGS ART BGR PQI HYA
ACK MVY LEB BHB AUG RKD LYH SHD CHO PHF CRW HTS CKB LWB PGV EWN OAJ FLO CSG ABY
AGS VLD BQK MGM DHN MEI PIB GTR PGD SFB PIE MLB GNV BQN PSE STT STX GUM SPN FAI
JNU KTN SIT WRG PSG YAK CDV BET OME OTZ BRW SCC ADQ DLG AKN ADK ITO MKK BLI WYS
EKO MMH SCK BFL OXR LWS PUW ALW EAT YKM VEL CNY CDC FWA TOL HVN BKG GST USA AZA
BLV RFD PSM CIU HGR JST
"""
RANKED_IATA = tuple(_RANKED_IATA_TEXT.split())

# (code, share of all US flights in 2018, kind). Regionals fly for the mainline carriers and
# dominate the small airports.
CARRIERS: tuple[tuple[str, float, str], ...] = (
    ("WN", 0.150, "mainline"), ("DL", 0.130, "mainline"), ("AA", 0.130, "mainline"),
    ("OO", 0.140, "regional"), ("UA", 0.090, "mainline"), ("YX", 0.045, "regional"),
    ("MQ", 0.045, "regional"), ("B6", 0.042, "mainline"), ("OH", 0.040, "regional"),
    ("AS", 0.035, "mainline"), ("9E", 0.035, "regional"), ("YV", 0.033, "regional"),
    ("EV", 0.030, "regional"), ("NK", 0.026, "lowcost"), ("F9", 0.018, "lowcost"),
    ("G4", 0.015, "lowcost"), ("HA", 0.012, "hawaii"),
)

HUBS: dict[str, tuple[str, ...]] = {
    "DL": ("ATL", "DTW", "MSP", "SLC", "JFK", "LGA", "BOS", "SEA", "LAX"),
    "AA": ("DFW", "CLT", "PHL", "MIA", "PHX", "ORD", "DCA", "LAX", "JFK"),
    "UA": ("ORD", "DEN", "IAH", "EWR", "SFO", "IAD", "LAX"),
    "WN": ("MDW", "DAL", "HOU", "BWI", "LAS", "DEN", "PHX", "OAK", "SJC", "SMF", "SAN", "BNA",
           "AUS", "STL", "MCO", "BUR", "MSY", "TPA", "FLL", "LAX"),
    "B6": ("JFK", "BOS", "FLL", "MCO", "LGB", "SJU"),
    "AS": ("SEA", "PDX", "ANC", "SFO", "LAX", "SAN"),
    "NK": ("FLL", "LAS", "DTW", "ORD", "MCO"),
    "F9": ("DEN",),
    "G4": ("LAS", "PIE", "SFB", "AZA", "BLI", "PGD", "USA"),
    "HA": ("HNL", "OGG", "KOA", "LIH", "ITO", "MKK"),
}

# Departures per day at full scale (a real ~7.2 M-flight year) at these ranks; log-interpolated
# in between. Gives ATL ~1,050/day, top-10 ~ a third of all flights, rank 300+ under 1/day.
_RANK_ANCHORS = ((1, 1050), (5, 620), (10, 480), (20, 330), (30, 260), (50, 130), (80, 55),
                 (110, 28), (150, 13), (200, 6), (250, 3), (300, 1.5), (360, 0.4))

_MILES_PER_KM = 0.621371


@dataclass(frozen=True)
class Universe:
    iata: np.ndarray          # str, ranked by traffic
    name: np.ndarray
    city: np.ndarray
    state: np.ndarray         # state / territory name as airportsdata spells it
    lat: np.ndarray
    lon: np.ndarray
    tz: np.ndarray            # IANA zone names
    daily_flights: np.ndarray  # expected departures per ordinary day at full scale
    hubness: np.ndarray       # 0 (tiny field) .. 1 (ATL): drives taxi times and congestion
    distance: np.ndarray      # [origin, dest] great-circle miles, int
    dest_cum: np.ndarray      # [origin, dest] cumulative destination probabilities
    carriers: np.ndarray      # carrier codes
    carrier_cum: np.ndarray   # [origin, carrier] cumulative carrier probabilities

    @property
    def size(self) -> int:
        return len(self.iata)


def _rank_weights(n: int) -> np.ndarray:
    ranks, per_day = zip(*_RANK_ANCHORS)
    return np.exp(np.interp(np.arange(1, n + 1), ranks, np.log(per_day)))


def _great_circle_miles(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    dphi = phi[:, None] - phi[None, :]
    dlam = lam[:, None] - lam[None, :]
    h = np.sin(dphi / 2) ** 2 + np.cos(phi[:, None]) * np.cos(phi[None, :]) * np.sin(dlam / 2) ** 2
    return np.rint(2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0, 1))) * _MILES_PER_KM).astype(np.int64)


# Islands and Alaska connect to the mainland only through a few gateways; without this a
# gravity model sends Bethel's handful of flights to Atlanta.
_GATEWAYS = {
    "hawaii": {"LAX", "SFO", "SEA", "PDX", "SJC", "OAK", "SAN", "LAS", "PHX", "DEN", "ORD",
               "DFW", "ATL", "JFK", "SMF", "HNL", "OGG", "KOA", "LIH"},
    "alaska": {"SEA", "PDX", "MSP", "DEN", "ORD", "LAX", "SFO", "PHX", "LAS", "SLC", "ATL",
               "ANC", "FAI", "JNU", "KTN"},
    "caribbean": {"ATL", "CLT", "MIA", "FLL", "MCO", "TPA", "JFK", "EWR", "PHL", "BOS", "IAD",
                  "ORD", "DFW", "IAH", "BWI", "SJU", "STT", "STX"},
    "pacific": {"HNL", "GUM"},
}


def _region(state: str, tz: str) -> str:
    if state == "Hawaii":
        return "hawaii"
    if state == "Alaska":
        return "alaska"
    if state in ("Puerto Rico", "Virgin Islands"):
        return "caribbean"
    if tz.startswith("Pacific/"):
        return "pacific"
    return "mainland"


def _reachable(iata: list[str], regions: list[str]) -> np.ndarray:
    """[origin, dest]: may a flight connect them at all."""
    n = len(iata)
    ok = np.ones((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            ri, rj = regions[i], regions[j]
            if ri != rj:
                remote = ri if ri != "mainland" else rj
                gates = _GATEWAYS[remote]
                ok[i, j] = iata[i] in gates and iata[j] in gates
    return ok


def _destination_probabilities(weights: np.ndarray, miles: np.ndarray, hubness: np.ndarray,
                               reachable: np.ndarray) -> np.ndarray:
    # Gravity model: big airports attract, distance repels (less so for hubs, whose networks
    # span the country), and a floor toward the biggest hubs keeps transcontinental routes;
    # nobody flies under 60 miles.
    attract = weights[None, :] ** 1.05
    reach = (350 + 700 * hubness)[:, None]
    big = np.arange(len(weights)) < 100
    floor = (np.where(big, 0.12, 0.02)[:, None] * (weights[None, :] / weights.max()) ** 0.5
             * np.exp(-miles / 2500))
    p = attract * (np.exp(-miles / reach) + floor)
    p[(miles < 60) | ~reachable] = 0.0
    np.fill_diagonal(p, 0.0)
    return p / p.sum(axis=1, keepdims=True)


# Who flies in the remote regions at all, and which carrier dominates there.
_REGION_CARRIERS = {
    "hawaii": ({"HA", "UA", "AS", "AA", "DL", "WN"}, "HA", 8.0),
    "alaska": ({"AS", "DL", "UA"}, "AS", 10.0),
    "pacific": ({"UA"}, "UA", 1.0),
    "caribbean": ({"B6", "NK", "AA", "DL", "UA", "WN", "F9", "OO", "9E"}, "B6", 2.0),
}
_HA_MAINLAND = ("LAX", "SFO", "SEA", "PDX", "SJC", "OAK", "SAN", "LAS", "PHX", "JFK")


def _carrier_probabilities(iata: list[str], regions: list[str], ranks: np.ndarray) -> np.ndarray:
    codes = [c for c, _, _ in CARRIERS]
    base = np.array([s for _, s, _ in CARRIERS])
    kinds = [k for _, _, k in CARRIERS]
    w = np.tile(base, (len(iata), 1))
    small = ranks > 100
    for j, kind in enumerate(kinds):
        if kind == "regional":
            w[small, j] *= 3.0
        elif kind == "mainline":
            w[small, j] *= 0.3
    for carrier, hubs in HUBS.items():
        j = codes.index(carrier)
        for hub in hubs:
            if hub in iata:
                w[iata.index(hub), j] *= 6.0
    w[small, codes.index("G4")] *= 2.5
    for i, (code, region) in enumerate(zip(iata, regions)):
        if region in _REGION_CARRIERS:
            allowed, main, boost = _REGION_CARRIERS[region]
            w[i, [j for j, c in enumerate(codes) if c not in allowed]] = 0.0
            w[i, codes.index(main)] *= boost
        elif code not in _HA_MAINLAND:
            w[i, codes.index("HA")] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def _cumulative(p: np.ndarray) -> np.ndarray:
    # x / x is exactly 1.0, so a uniform draw below 1 never falls past the last category.
    cum = np.cumsum(p, axis=1)
    return cum / cum[:, -1:]


@functools.lru_cache(maxsize=1)
def universe() -> Universe:
    import airportsdata

    known = airportsdata.load("IATA")
    seen: set[str] = set()
    rows = []
    for code in RANKED_IATA:
        if code in seen or code not in known:
            continue
        seen.add(code)
        rows.append(known[code])
    iata = [r["iata"] for r in rows]
    states = [r["subd"] for r in rows]
    lat = np.array([r["lat"] for r in rows])
    lon = np.array([r["lon"] for r in rows])
    ranks = np.arange(1, len(rows) + 1)
    weights = _rank_weights(len(rows))
    miles = _great_circle_miles(lat, lon)
    hubness = np.log(weights / weights.min()) / np.log(weights.max() / weights.min())
    regions = [_region(r["subd"], r["tz"]) for r in rows]
    dest_p = _destination_probabilities(weights, miles, hubness, _reachable(iata, regions))
    carrier_p = _carrier_probabilities(iata, regions, ranks)
    return Universe(
        iata=np.array(iata),
        name=np.array([r["name"] for r in rows]),
        city=np.array([r["city"] for r in rows]),
        state=np.array(states),
        lat=lat,
        lon=lon,
        tz=np.array([r["tz"] for r in rows]),
        daily_flights=weights,
        hubness=hubness,
        distance=miles,
        dest_cum=_cumulative(dest_p),
        carriers=np.array([c for c, _, _ in CARRIERS]),
        carrier_cum=_cumulative(carrier_p),
    )
