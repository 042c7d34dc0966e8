"""The claims suite: claim files (load, plan, judge, verdict), fitted quantities, the report's sections, and
``run_claims`` which runs every claim at a size and writes ``REPORT.md``."""

from experiments.claims import fits
from experiments.claims.claim import (
    CLAIMS_DIR,
    SIZES,
    Claim,
    all_claims,
    case_level,
    competence,
    judge,
    load_claim,
    pair_by_seed,
    plan,
    runs_folder,
    tunes,
    values,
    verdict,
)
from experiments.claims.sections import (
    claim_section,
    describe_condition,
    skipped_section,
    verdict_table,
    with_post_rows,
)
from experiments.claims.suite import environment, load_claim_runs, publish, run_claims

__all__ = [
    "all_claims",
    "case_level",
    "competence",
    "Claim",
    "claim_section",
    "CLAIMS_DIR",
    "describe_condition",
    "environment",
    "fits",
    "judge",
    "load_claim",
    "load_claim_runs",
    "pair_by_seed",
    "plan",
    "publish",
    "run_claims",
    "runs_folder",
    "SIZES",
    "tunes",
    "skipped_section",
    "values",
    "verdict",
    "verdict_table",
    "with_post_rows",
]
