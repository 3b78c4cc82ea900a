import { headers } from "next/headers";
import { redirect } from "next/navigation";

import { TaskBoard } from "@/components/TaskBoard";
import { auth } from "@/lib/auth";
import { apiUrl } from "@/lib/settings";

// The API's address is read per request, so one build serves any deployment.
export const dynamic = "force-dynamic";

export default async function Home() {
  const session = await auth.api.getSession({ headers: await headers() });
  if (!session) redirect("/sign-in");
  return <TaskBoard apiUrl={apiUrl()} userName={session.user.name || session.user.email} />;
}
