"""What happened after churn risk: timing cohorts, win-back, targets, interventions (issue 16)."""
