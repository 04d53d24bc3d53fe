-- Re-engagement by audience: of the users who entered a synced audience's segment in a
-- period, how many did what the audience is there to bring about within 14 days of entering:
--   lapsed_7d (audience "Lapsed 7 days")    entered 7 days after an event with no event in
--                                            those 7 days; re-engaged by any later event;
--   cart_abandoner (audience "Cart abandoners")  entered 1 hour after an add-to-cart with no
--                                            purchase in that hour (counted once per basket: the
--                                            first add-to-cart since the last purchase, or more
--                                            than 7 days after the previous add-to-cart);
--                                            re-engaged by a purchase.
--
-- The archive holds events, not segment membership: entries are recomputed from the events with
-- the rules of the sample config (infra/config/apps.json); keep the two in step. This measures
-- what the users did, not what the ads did: the archive does not know who saw an ad, and there
-- is no hold-out group; compare periods, or audiences, rather than read it as ad lift.
--
-- Parameters (edit the literals): app 'sample-shop'; entries between 2026-12-01 and 2026-12-07
-- (UTC); 14 days to re-engage (INTERVAL '14' DAY, twice below); events from 2026-11-24 (the
-- 7 days before the first entry) to 2026-12-21 (the last entry plus 14 days); partitions (days
-- of arrival) 2026-11-24 to 2026-12-28, the last event day widened by the 7 days of lateness
-- the API accepts.
WITH archived AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY app, event_id ORDER BY received_at) AS copy
    FROM events
    WHERE app = 'sample-shop' AND day BETWEEN '2026-11-24' AND '2026-12-28')
  WHERE copy = 1),
ordered AS (
  SELECT user_key, event_id, event_time,
         event_name IN ('AddToCart', 'fb_mobile_add_to_cart') AS is_add,
         lead(event_time) OVER (PARTITION BY user_key ORDER BY event_time, event_id) AS next_event,
         min(CASE WHEN event_name IN ('Purchase', 'fb_mobile_purchase') THEN event_time END)
           OVER (PARTITION BY user_key ORDER BY event_time, event_id
                 ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_purchase,
         max(CASE WHEN event_name IN ('Purchase', 'fb_mobile_purchase') THEN event_time END)
           OVER (PARTITION BY user_key ORDER BY event_time, event_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_purchase,
         max(CASE WHEN event_name IN ('AddToCart', 'fb_mobile_add_to_cart') THEN event_time END)
           OVER (PARTITION BY user_key ORDER BY event_time, event_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_add
  FROM archived
  WHERE event_time >= TIMESTAMP '2026-11-24 00:00:00' AND event_time < TIMESTAMP '2026-12-22 00:00:00'),
entries AS (
  SELECT 'lapsed_7d' AS segment, user_key, event_time + INTERVAL '7' DAY AS entered_at,
         next_event AS reengaged_at
  FROM ordered
  WHERE next_event IS NULL OR next_event >= event_time + INTERVAL '7' DAY
  UNION ALL
  SELECT 'cart_abandoner', user_key, event_time + INTERVAL '1' HOUR,
         next_purchase
  FROM ordered
  WHERE is_add
    AND (previous_add IS NULL OR previous_add < previous_purchase
         OR previous_add <= event_time - INTERVAL '7' DAY)
    AND (next_purchase IS NULL OR next_purchase >= event_time + INTERVAL '1' HOUR))
SELECT segment,
       count(*) AS entered,
       count(CASE WHEN reengaged_at < entered_at + INTERVAL '14' DAY THEN 1 END) AS reengaged_within_14d,
       round(CAST(count(CASE WHEN reengaged_at < entered_at + INTERVAL '14' DAY THEN 1 END) AS DOUBLE)
             / count(*), 3) AS rate
FROM entries
WHERE entered_at >= TIMESTAMP '2026-12-01 00:00:00' AND entered_at < TIMESTAMP '2026-12-08 00:00:00'
GROUP BY 1
ORDER BY 1;
