// Package samlocal holds no code, only a test: TestSAMLocalInvoke does for every Lambda function
// of the stack what
//
//	sam local invoke -t cdk.out/Retarget.template.json <logical id> -e events/<fn>/<fixture>.json
//
// does, without Docker or AWS. It synthesises the stack in-process the way `cdk synth` does (with
// the asset metadata SAM reads) but from host-architecture bootstraps, finds each
// AWS::Lambda::Function of the template and its code through Metadata "aws:asset:path", gives it
// the template's environment with local stand-ins for what the template references (kinesalite,
// dynalite, the Meta sandbox, local secret values), runs the staged bootstrap under the Lambda
// Runtime Interface Emulator (the emulator inside SAM's images) and sends it every fixture of
// events/<fn>/, checking each answer.
//
// Run it with `make test`, or alone:
//
//	make tools build-host
//	EMULATORS_REQUIRED=1 RIE_BIN=$PWD/.devtools/bin/aws-lambda-rie HOST_BUILD_DIR=$PWD/build/host \
//	  go test -count=1 -v ./infra/e2e/samlocal/
//
// Without HOST_BUILD_DIR the test builds the bootstraps itself. It needs Linux (the emulator);
// missing tools skip it unless EMULATORS_REQUIRED=1.
package samlocal
