"""The results side: the leaderboard file, aggregation, reports and audits."""
