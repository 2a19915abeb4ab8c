# The DQ2-style catalog (datasets, versions, replicas) arrives with the catalog issue.
