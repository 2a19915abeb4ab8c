"""Reads of the brokerage log: what brokerage decided about a job, for the job page and its JSON."""

from sites.models import Site

from .models import BrokerageContext, BrokerageDecision

# What each rejection reason means, in the words the job page shows. Reasons that higher layers
# add (site filters) fall back on the phrase their rule gave (needs["rules"][...]["why"]).
REASON_LABELS = {
    "status": "not online (brokeroff, test or offline)",
    "memory": "memory limit below the job's need",
    "disk": "disk limit below the job's need",
    "walltime": "walltime limit below the job's need",
    "cores": "fewer cores per slot than the job needs",
    "storage": "storage (nearly) full",
    "release": "the job's release is not installed",
    "queue_full": "queue full (queued jobs at twice the site's running-job limit)",
    "assigned_site": "the site the job came with cannot run it",
    "task_excluded": "excluded by the job's task",
    "task_site": "not the site the job's task runs at",
    "storage_quota": "the user's storage quota is reached there",
}


def brokerage_decision(*, pandaid):
    """The latest brokerage decision about a job, or None when brokerage has not looked at it yet.

    {"decided_at": datetime, "outcome": "picked" | "kept" | "unfit" | "no_site" | "held",
     "outcome_label": str, "site": name or None, "diag": str (why no site; "" when one was chosen),
     "candidates": [{"site": name, "weight": float, "input_share": 0..1, "chosen": bool}, ...] best first
         (the decision row keeps [site id, weight, share] triples: compact for 100,000s of jobs),
     "needs": {"memory_mb", "disk_mb", "walltime_s", "cores", ["release"], ["site"], ["rules": [...]]},
     "n_sites": sites considered, "n_eligible": sites left after the filters,
     "rejected": [{"reason": key, "label": str, "n": sites, "sites": [up to 5 names]}, ...] most first}
    Three small queries (the decision, its shared context, the candidates' site names).
    """
    decision = BrokerageDecision.objects.filter(job_id=pandaid).first()
    if decision is None:
        return None
    context = BrokerageContext.objects.filter(pk=decision.context_id).first() if decision.context_id else None
    ids = {site_id for site_id, _, _ in decision.candidates} | ({decision.site_id} if decision.site_id else set())
    names = dict(Site.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    site = names.get(decision.site_id)
    needs = context.needs if context else {}
    whys = {rule.get("reason"): rule.get("why") for rule in needs.get("rules", ())}
    rejected = sorted(
        (
            {"reason": reason, "label": REASON_LABELS.get(reason) or whys.get(reason) or reason,
             "n": data.get("n", 0), "sites": data.get("sites", [])}
            for reason, data in (context.rejected if context else {}).items()
        ),
        key=lambda row: (-row["n"], row["reason"]),
    )  # fmt: skip
    return {
        "decided_at": decision.decided_at,
        "outcome": decision.outcome,
        "outcome_label": BrokerageDecision.Outcome(decision.outcome).label,
        "site": site,
        "diag": decision.diag,
        "candidates": [
            {
                "site": names.get(site_id, f"site {site_id}"),
                "weight": weight,
                "input_share": share,
                "chosen": site_id == decision.site_id,
            }
            for site_id, weight, share in decision.candidates
        ],
        "needs": needs,
        "n_sites": context.n_sites if context else 0,
        "n_eligible": context.n_eligible if context else 0,
        "rejected": rejected,
    }
