# Alarm records and rules arrive with the alarms issue.
