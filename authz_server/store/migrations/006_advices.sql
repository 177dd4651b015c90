-- Advices: purchases the network approved in stand-in, recorded and reserved as they came.

ALTER TABLE authorizations ADD COLUMN advice boolean NOT NULL DEFAULT false;
