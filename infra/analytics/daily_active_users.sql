-- Daily active users: per day an event happened (UTC), the users who used the app that day.
--
-- Parameters (edit the literals): app 'sample-shop'; event days 2026-12-01 to 2026-12-07;
-- partitions (days of arrival) 2026-12-01 to 2026-12-14, the event days widened by the 7 days
-- of lateness the API accepts.
--
-- Active means at least one event the app itself sent (server = false): an event the app's
-- backend sends (a subscription renewal, a refund) is not the user opening the app.
WITH archived AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY app, event_id ORDER BY received_at) AS copy
    FROM events
    WHERE app = 'sample-shop' AND day BETWEEN '2026-12-01' AND '2026-12-14')
  WHERE copy = 1)
SELECT CAST(event_time AS DATE) AS event_day, count(DISTINCT user_key) AS active_users
FROM archived
WHERE event_time >= TIMESTAMP '2026-12-01 00:00:00' AND event_time < TIMESTAMP '2026-12-08 00:00:00'
  AND NOT server
GROUP BY 1
ORDER BY 1;
