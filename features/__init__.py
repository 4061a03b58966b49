"""Raw tables -> validated data source -> point-in-time account snapshots and labels."""
