-- Revenue by segment: the purchases of a period, by the segment each purchase took its buyer
-- out of, the remarketing segments' payoff.
--
-- The archive holds events, not segment membership, so membership at the moment of each
-- purchase is recomputed here from the events with the rules of the sample config
-- (infra/config/apps.json); keep the two in step when the rules change:
--   cart_abandoner  an add-to-cart at least 1 hour and less than 7 days before the purchase,
--                   with no purchase between the two;
--   lapsed_7d       seen before (within the lookback below), and no event at all in the 7 days
--                   before the purchase;
--   none            neither (the rules exclude each other: an add-to-cart less than 7 days
--                   before is an event less than 7 days before).
--
-- Parameters (edit the literals): app 'sample-shop'; purchases between 2026-12-01 and
-- 2026-12-07 (event days, UTC); lookback 90 days for "seen before" (events from 2026-09-02):
-- a user last seen longer ago counts as new (none); partitions (days of arrival) 2026-09-02
-- to 2026-12-14, the period widened by the 7 days of lateness the API accepts. Athena reads
-- only the Parquet columns the query uses (the SELECT * below is pruned), so the long lookback
-- costs the bytes of eight columns, not of whole rows.
--
-- Revenue is the purchases' value per currency (the archive keeps the currency each event
-- carried; no conversion); a purchase without a value counts as a purchase of no revenue.
WITH archived AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY app, event_id ORDER BY received_at) AS copy
    FROM events
    WHERE app = 'sample-shop' AND day BETWEEN '2026-09-02' AND '2026-12-14')
  WHERE copy = 1),
ordered AS (
  SELECT user_key, event_id, event_name, event_time, value, currency,
         event_name IN ('Purchase', 'fb_mobile_purchase') AS is_purchase,
         lag(event_time) OVER (PARTITION BY user_key ORDER BY event_time, event_id) AS previous_event,
         max(CASE WHEN event_name IN ('Purchase', 'fb_mobile_purchase') THEN event_time END)
           OVER (PARTITION BY user_key ORDER BY event_time, event_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_purchase
  FROM archived
  WHERE event_time >= TIMESTAMP '2026-09-02 00:00:00' AND event_time < TIMESTAMP '2026-12-08 00:00:00'),
purchases AS (
  SELECT * FROM ordered
  WHERE is_purchase
    AND event_time >= TIMESTAMP '2026-12-01 00:00:00' AND event_time < TIMESTAMP '2026-12-08 00:00:00'),
abandoned AS (
  SELECT DISTINCT p.event_id
  FROM purchases p
  JOIN archived a ON a.user_key = p.user_key
    AND a.event_name IN ('AddToCart', 'fb_mobile_add_to_cart')
    AND a.event_time <= p.event_time - INTERVAL '1' HOUR
    AND a.event_time > p.event_time - INTERVAL '7' DAY
    AND (p.previous_purchase IS NULL OR a.event_time > p.previous_purchase)),
classified AS (
  SELECT p.*,
         CASE
           WHEN b.event_id IS NOT NULL THEN 'cart_abandoner'
           WHEN p.previous_event <= p.event_time - INTERVAL '7' DAY THEN 'lapsed_7d'
           ELSE 'none'
         END AS segment
  FROM purchases p
  LEFT JOIN abandoned b ON b.event_id = p.event_id)
SELECT segment, currency,
       count(*) AS purchases,
       count(DISTINCT user_key) AS buyers,
       round(coalesce(sum(value), 0), 2) AS revenue
FROM classified
GROUP BY 1, 2
ORDER BY 1, 2;
