-- The currencies the orders service accepts, with their scale. The service
-- owns this list: it checks a caller's currency and prices against it and never
-- trusts a scale a caller sends. It matches the BFF's `currencies` table (the
-- BFF refuses an unknown currency first); a currency added there is added here
-- by a migration of this service.
CREATE TABLE currencies (
    code        char(3)  PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4)
);

INSERT INTO currencies (code, minor_units) VALUES
    ('AED', 2),
    ('AMD', 2),
    ('AUD', 2),
    ('AZN', 2),
    ('BHD', 3),
    ('BRL', 2),
    ('BYN', 2),
    ('CAD', 2),
    ('CHF', 2),
    ('CLF', 4),
    ('CNY', 2),
    ('CZK', 2),
    ('DKK', 2),
    ('EUR', 2),
    ('GBP', 2),
    ('GEL', 2),
    ('HKD', 2),
    ('INR', 2),
    ('JPY', 0),
    ('KGS', 2),
    ('KRW', 0),
    ('KWD', 3),
    ('KZT', 2),
    ('MXN', 2),
    ('NOK', 2),
    ('NZD', 2),
    ('PLN', 2),
    ('RUB', 2),
    ('SEK', 2),
    ('SGD', 2),
    ('THB', 2),
    ('TRY', 2),
    ('UAH', 2),
    ('USD', 2),
    ('UZS', 2),
    ('ZAR', 2);
