"""The top floor: the `suiqa` CLI (every package's commands), the demo, and the local stack's process
orchestration (`suiqa up/down/status`). Nothing imports this package; it may import every other one."""
