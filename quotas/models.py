# User and group quotas arrive with the quotas issue.
