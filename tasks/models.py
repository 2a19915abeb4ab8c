# Tasks (production requests, analysis submissions) arrive with the tasks issue.
