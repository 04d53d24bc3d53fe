-- Funnel to purchase: of the users whose first add-to-cart of the period was on a given day,
-- how many purchased within 7 days after it.
--
-- Parameters (edit the literals): app 'sample-shop'; first add-to-cart between 2026-12-01 and
-- 2026-12-07 (event days, UTC); purchase window 7 days (INTERVAL '7' DAY, twice below), so
-- purchases up to 2026-12-14 count; partitions (days of arrival) 2026-12-01 to 2026-12-21, the
-- last purchase day widened by the 7 days of lateness the API accepts.
--
-- Event names are as the app sent them: the Conversions API name or the app event name.
WITH archived AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY app, event_id ORDER BY received_at) AS copy
    FROM events
    WHERE app = 'sample-shop' AND day BETWEEN '2026-12-01' AND '2026-12-21')
  WHERE copy = 1),
carts AS (
  SELECT user_key, min(event_time) AS first_add
  FROM archived
  WHERE event_name IN ('AddToCart', 'fb_mobile_add_to_cart')
    AND event_time >= TIMESTAMP '2026-12-01 00:00:00' AND event_time < TIMESTAMP '2026-12-08 00:00:00'
  GROUP BY user_key),
converted AS (
  SELECT DISTINCT c.user_key
  FROM carts c
  JOIN archived p ON p.user_key = c.user_key
    AND p.event_name IN ('Purchase', 'fb_mobile_purchase')
    AND p.event_time >= c.first_add AND p.event_time < c.first_add + INTERVAL '7' DAY)
SELECT CAST(c.first_add AS DATE) AS cart_day,
       count(*) AS added_to_cart,
       count(v.user_key) AS purchased_within_7d,
       round(CAST(count(v.user_key) AS DOUBLE) / count(*), 3) AS conversion
FROM carts c
LEFT JOIN converted v ON v.user_key = c.user_key
GROUP BY 1
ORDER BY 1;
