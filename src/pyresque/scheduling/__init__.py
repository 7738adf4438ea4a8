"""Layer 5, scheduling: time turned into jobs.

The scheduler that moves due delayed jobs to their queues, and recurring (cron and
interval) schedules, kept compatible with resque-scheduler.

May import: ``client`` and below.
"""
