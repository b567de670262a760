"""filepipe's policy pack: `pulumi preview --policy-pack policy` (the CLI runs this file with this folder first on
`sys.path`). Every rule is mandatory: a violation fails the preview and stops `pulumi up`."""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import POLICIES

PolicyPack("filepipe", policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
