"""The contract check refuses what it must refuse: each case changes one thing of the served
contract the way a careless edit would, and the check has to name it.

Run: python3 -m unittest discover -s tests/contract
"""

import copy
import os
import unittest

import check_contract

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SERVED = os.path.join(ROOT, "src", "api", "openapi-v1.yaml")
UPSTREAM = os.path.join(os.path.dirname(__file__), "upstream", "openapi-v1.yaml")


def errors_of(served, upstream):
    errors = []
    check_contract.superset(upstream, served, (), errors)
    check_contract.check_success_shapes(upstream, served, errors)
    return errors


class CheckContract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.served = check_contract.load(SERVED)
        cls.upstream = check_contract.load(UPSTREAM)

    def mutated(self, change):
        doc = copy.deepcopy(self.served)
        change(doc)
        return errors_of(doc, self.upstream)

    def test_the_served_contract_passes(self):
        self.assertEqual(errors_of(self.served, self.upstream), [])

    def test_a_removed_path_or_renamed_operation_fails(self):
        self.assertTrue(self.mutated(lambda d: d["paths"].pop("/v1/devices")))
        self.assertTrue(self.mutated(lambda d: d["paths"]["/v1/users"]["post"].update(operationId="signUp")))

    def test_a_changed_success_shape_fails(self):
        auth = lambda d: d["components"]["schemas"]["AuthResponse"]  # noqa: E731
        self.assertTrue(self.mutated(lambda d: auth(d)["properties"].update(extra={"type": "string"})))
        self.assertTrue(self.mutated(lambda d: auth(d)["properties"]["expiresAt"].update(type="string")))
        self.assertTrue(self.mutated(lambda d: auth(d)["properties"]["deviceId"].update(nullable=True)))

    def test_a_loosened_request_rule_fails(self):
        login = lambda d: d["components"]["schemas"]["LoginRequest"]["properties"]  # noqa: E731
        self.assertTrue(self.mutated(lambda d: login(d)["password"].update(minLength=8)))
        self.assertTrue(self.mutated(lambda d: login(d)["username"].update(maxLength=60)))
        self.assertTrue(self.mutated(lambda d: login(d)["username"].update(nullable=True)))
        self.assertTrue(self.mutated(lambda d: d["components"]["schemas"]["LoginRequest"]["required"].remove("password")))
        key_header = lambda d: d["paths"]["/v1/messages"]["post"]["parameters"][0]  # noqa: E731
        self.assertTrue(self.mutated(lambda d: key_header(d).update(required=False)))

    def test_added_constraints_and_texts_pass(self):
        login = lambda d: d["components"]["schemas"]["LoginRequest"]["properties"]  # noqa: E731
        self.assertEqual(self.mutated(lambda d: login(d)["password"].update(minLength=20, description="x")), [])
        self.assertEqual(self.mutated(lambda d: login(d)["username"].update(pattern="^[a-z]+$")), [])


if __name__ == "__main__":
    unittest.main()
