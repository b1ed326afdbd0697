-- Loyalty points are counted per currency: `units_per_point` is how many whole
-- units of the currency earn one point, about one euro's worth, so an order
-- in yen or som earns what the same value in euros does. The rates are fixed
-- here and change by a migration of this service; they are a loyalty rule,
-- not exchange rates.
ALTER TABLE currencies
    ADD COLUMN units_per_point integer NOT NULL DEFAULT 1 CHECK (units_per_point >= 1);

UPDATE currencies AS c SET units_per_point = r.units
FROM (VALUES
    ('AED', 4), ('AMD', 400), ('AUD', 2), ('AZN', 2), ('BRL', 6), ('BYN', 3),
    ('CNY', 8), ('CZK', 25), ('DKK', 7), ('GEL', 3), ('HKD', 8), ('INR', 90),
    ('JPY', 150), ('KGS', 90), ('KRW', 1500), ('KZT', 500), ('MXN', 20),
    ('NOK', 11), ('NZD', 2), ('PLN', 4), ('RUB', 90), ('SEK', 11), ('THB', 35),
    ('TRY', 35), ('UAH', 45), ('UZS', 13000), ('ZAR', 20)
) AS r (code, units)
WHERE c.code = r.code;
