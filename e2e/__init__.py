"""End-to-end check of a deployed stack: run what the task definitions say, for real, on this machine.

`python -m e2e` deploys site.yml to a private emulator, reads the ECS services and task definitions
back through the AWS API, starts PostgreSQL and RabbitMQ on loopback, starts every container as a
local process with exactly its task definition's command, environment and secrets (plus a short,
printed list of local rewrites: host names, ports, the AWS endpoint), waits for each container's own
health check, runs the books_etl DAG through the Celery workers and checks its output, its logs
and the UI. `python -m e2e.bench` times a cold start and a 50-task fan-out (Celery vs LocalExecutor).
"""
